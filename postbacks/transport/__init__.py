"""Where a postback may connect and how its request is sent.

netguard.py decides which addresses are allowed; policy.py holds every sending rule the two
senders share (HttpResult, URL checks, time-outs, body cap, redirects, TLS); requests_sender.py
sends one request at a time, aiohttp_sender.py many at once; signing.py adds signature headers.
"""
