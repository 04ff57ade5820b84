"""HTTPS through the pinned address: both senders connect to the checked IP, yet send the URL's
host name as SNI and verify the certificate against that name, never against the IP.

A local HTTPS server on 127.0.0.1 serves certificates from a throwaway CA made here with the
openssl CLI; `tracker.test` resolves to 127.0.0.1 through netguard.resolve (the seam both
senders use), and the CA is trusted through POSTBACK_CA_BUNDLE.
"""

import ipaddress
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from postbacks.transport import netguard

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

HOST = "tracker.test"


EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"


def _openssl(command: str, cwd):
    subprocess.run(["openssl", *command.split()], cwd=cwd, check=True, capture_output=True)


def _leaf(directory, name: str, alt_names: str):
    """A server certificate for `alt_names` (subjectAltName syntax) signed by the test CA."""
    _openssl(f"req {EC_KEY} -keyout {name}.key -out {name}.csr -subj /CN={name}", directory)
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={alt_names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        f"x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        f"-out {name}.pem -extfile {name}.ext",
        directory,
    )
    return directory / f"{name}.pem", directory / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA (trusted only through POSTBACK_CA_BUNDLE) and two server certificates."""
    directory = tmp_path_factory.mktemp("pki")
    _openssl(
        f"req -x509 {EC_KEY} -keyout ca.key -out ca.pem -days 2 -subj /CN=throwaway-test-ca "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        directory,
    )
    return {
        "ca": directory / "ca.pem",
        # The right name only: no IP in it, so a success proves the name was checked.
        "right": _leaf(directory, "right", f"DNS:{HOST}"),
        # Another name, and the IP we connect to: accepting it would mean the IP was checked.
        "wrong": _leaf(directory, "wrong", "DNS:other.test,IP:127.0.0.1"),
    }


class TLSServer:
    """An HTTPS server on 127.0.0.1 (free port); records the SNI of each handshake."""

    def __init__(self, cert_and_key):
        self.server_names: list = []
        self.handshake_errors: list = []
        self.requests: list = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, cert_and_key))
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append({"path": self.path, "host": self.headers["Host"]})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address):
                # The handshake runs in the request's thread, not in the accepting one.
                try:
                    tls = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    outer.handshake_errors.append(exc)
                    return
                try:
                    super().finish_request(tls, client_address)
                finally:
                    tls.close()

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tracker_on_loopback(settings, monkeypatch, pki):
    """`tracker.test` and `other.test` mean 127.0.0.1; the test CA is trusted."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_CA_BUNDLE = str(pki["ca"])
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        assert host.rstrip(".") in (HOST, "other.test"), host
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "resolve", resolve)
    return lookups


@pytest.mark.parametrize("host", [HOST, HOST + "."])
def test_sends_the_host_name_as_sni_and_accepts_its_certificate(
    tracker_on_loopback, pki, send, host
):
    with TLSServer(pki["right"]) as server:
        result = send("GET", f"https://{host}:{server.port}/pb?a=1", headers={})
        assert result.status == 200 and result.body == "ok", result.error
        assert server.server_names == [HOST]  # never the IP, never with the trailing dot
        assert server.requests[0]["path"] == "/pb?a=1"
        assert server.requests[0]["host"].removesuffix(f":{server.port}").rstrip(".") == HOST
    assert [h.rstrip(".") for h in tracker_on_loopback] == [HOST]


def test_a_certificate_for_another_name_is_refused(tracker_on_loopback, pki, send):
    """The certificate is valid for 127.0.0.1, the address connected to, but not for the
    URL's host: refused, with an error that says so, and nothing is sent."""
    with TLSServer(pki["wrong"]) as server:
        result = send("GET", f"https://{HOST}:{server.port}/pb", headers={})
        assert result.status is None and not result.ok
        assert result.error.startswith(f"TLS certificate not accepted for {HOST}: "), result.error
        assert HOST in result.error.split(": ", 1)[1]  # the reason names the mismatch
        assert not result.permanent  # the receiver may fix its certificate: retried
        assert server.server_names == [HOST]
        assert server.requests == []


def test_a_certificate_from_an_unknown_ca_is_refused(tracker_on_loopback, pki, send, settings):
    """Without the test CA in POSTBACK_CA_BUNDLE the default store is used: verification is on."""
    settings.POSTBACK_CA_BUNDLE = ""
    with TLSServer(pki["right"]) as server:
        result = send("GET", f"https://{HOST}:{server.port}/pb", headers={})
        assert result.status is None
        assert result.error.startswith(f"TLS certificate not accepted for {HOST}: "), result.error
        assert "certificate verify failed" in result.error
        assert server.requests == []


def test_the_url_host_not_an_earlier_connection_decides(tracker_on_loopback, pki, send):
    """Same address and port, two names: the connection for one is not reused for the other."""
    with TLSServer(pki["right"]) as server:
        assert send("GET", f"https://{HOST}:{server.port}/a", headers={}).status == 200
        result = send("GET", f"https://other.test:{server.port}/b", headers={})
        assert result.status is None and "TLS certificate not accepted for other.test" in (
            result.error
        )
        assert [r["path"] for r in server.requests] == ["/a"]


def test_check_refuses_a_ca_bundle_that_is_not_a_file(settings, pki, tmp_path):
    from postbacks.checks import ca_bundle_is_a_file

    settings.POSTBACK_CA_BUNDLE = ""
    assert ca_bundle_is_a_file(None) == []
    settings.POSTBACK_CA_BUNDLE = str(pki["ca"])
    assert ca_bundle_is_a_file(None) == []
    settings.POSTBACK_CA_BUNDLE = str(tmp_path / "missing.pem")
    (error,) = ca_bundle_is_a_file(None)
    assert error.id == "postbacks.E002" and "missing.pem" in error.msg
