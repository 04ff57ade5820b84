import time

from django.core.management.base import BaseCommand

from demo.sink import Sink


class Command(BaseCommand):
    help = "Run a local stand-in for an affiliate's tracker on 127.0.0.1 that prints each request."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--status", type=int, default=200, help="HTTP status to answer")

    def handle(self, *args, port, status, **options):
        sink = Sink(port, echo=self._print)
        sink.behaviour.status = status
        with sink:
            self.stdout.write(f"Demo tracker (sink) listening on {sink.url}/ — answering {status}")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass

    def _print(self, request):
        line = f"[sink] {request.method} {request.path}"
        if request.body:
            line += f"  body: {request.body}"
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.flush()
