"""A JWKS endpoint served by the test suite itself, shaped like Supabase Auth's.

Supabase Auth publishes the public halves of a project's asymmetric signing keys at
`https://<ref>.supabase.co/auth/v1/.well-known/jwks.json` (supabase/auth `internal/api/jwks.go`:
every non-HMAC key, with `use: "sig"` and `key_ops: ["verify"]` set by `internal/conf/jwk.go`,
beside the `kty`, `kid`, `alg` and `ext` its keys are generated with). A project still on the legacy
JWT secret publishes `{"keys": []}`. `JwksServer` serves the same document over HTTP on 127.0.0.1
(a free port, a thread), with ES256 and RS256 keys generated per run, and lets a test:

- rotate keys (`rotate("ES256")` publishes a new current key; `revoke(key)` withdraws one;
  `publish_raw(jwk)` adds any JWK as given),
- count the fetches (`fetches`),
- make the endpoint misbehave: `mode = "down"` (HTTP 503), `"slow"` (answers after `delay`
  seconds), `"dribble"` (the answer a byte every 0.2 s), `"garbage"` (not JSON), `"empty"` (`{"keys": []}`), or stop it altogether (`stop()`;
  nothing listens there any more; `start()` again brings it back on the same port).

A pytest plugin (tests/conftest.py lists it): the `jwks_server` fixture needs no import.

`SigningKey` holds the private key, so `tests/supabase_tokens.py` can sign with it.
"""

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
MODES = ("ok", "down", "slow", "dribble", "garbage", "empty")


class SigningKey:
    """An asymmetric signing key as a Supabase project has one: a kid (a UUID), an algorithm."""

    def __init__(self, alg: str = "ES256", kid: str | None = None):
        if alg == "ES256":
            self.private_key = ec.generate_private_key(ec.SECP256R1())
            public = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        elif alg == "RS256":
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        else:
            raise ValueError(f"Supabase signs with ES256 or RS256, not {alg}")
        self.alg = alg
        self.kid = kid or str(uuid.uuid4())
        # The fields Supabase Auth's endpoint carries, in its (alphabetical) order.
        self.jwk = dict(
            sorted(
                {
                    **public,
                    "alg": alg,
                    "ext": True,
                    "key_ops": ["verify"],
                    "kid": self.kid,
                    "use": "sig",
                }.items()
            )
        )

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"SigningKey({self.alg}, kid={self.kid})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}{JWKS_PATH}"


class JwksServer:
    def __init__(self, algs: tuple[str, ...] = ("ES256", "RS256")):
        self.keys: list[SigningKey] = [SigningKey(alg) for alg in algs]
        self.extra: list[
            dict
        ] = []  # JWKs published as given (an attacker's or a misconfigured set)
        self.mode = "ok"
        self.delay = 10.0  # seconds, in "slow" mode: longer than any sane fetch timeout
        self._fetches = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- the keys ------------------------------------------------------------------------
    @property
    def current(self) -> SigningKey:
        """The key Supabase Auth would sign new tokens with (the first one published)."""
        return self.keys[0]

    def key(self, alg: str) -> SigningKey:
        return next(k for k in self.keys if k.alg == alg)

    def rotate(self, alg: str = "ES256") -> SigningKey:
        """A new current key; the previous ones stay published ("previously used")."""
        key = SigningKey(alg)
        with self._lock:
            self.keys.insert(0, key)
        return key

    def revoke(self, key: SigningKey) -> None:
        with self._lock:
            self.keys.remove(key)

    def publish_raw(self, jwk: dict) -> None:
        """Publish a JWK as it is, after the real keys (a symmetric key, another curve, ...)."""
        with self._lock:
            self.extra.append(jwk)

    def document(self) -> dict:
        with self._lock:
            return {"keys": [k.jwk for k in self.keys] + list(self.extra)}

    # -- what the service did ------------------------------------------------------------
    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def _count(self) -> None:
        with self._lock:
            self._fetches += 1

    # -- life cycle ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._port is not None, "the server was never started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    @property
    def issuer(self) -> str:
        """What Supabase puts in `iss`: the project's auth URL (the JWKS URL minus its tail)."""
        return f"http://127.0.0.1:{self.port}/auth/v1"

    def start(self) -> "JwksServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != JWKS_PATH:
                    self._send(404, b'{"message":"not found"}')
                    return
                server._count()
                mode = server.mode
                if mode == "slow":
                    time.sleep(server.delay)
                if mode == "dribble":
                    self._dribble(json.dumps(server.document()).encode())
                elif mode == "down":
                    self._send(503, b'{"message":"upstream unavailable"}')
                elif mode == "garbage":
                    self._send(200, b"<html>not a key set</html>")
                elif mode == "empty":
                    self._send(200, b'{"keys":[]}')
                else:
                    self._send(200, json.dumps(server.document()).encode())

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its timeout) before a slow answer came

            def _dribble(self, body: bytes) -> None:
                """The whole answer, a byte every 0.2 s: each read is quick, the answer is not."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        # The same port again after a stop() (a JWKS that comes back), a free one the first time.
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port or 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a "slow" handler must not hold up stop()
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: the port refuses connections from now on (the URL stays the same)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> "JwksServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def jwks_server():
    """A fresh JWKS endpoint per test (an ES256 and an RS256 key), so fetch counts start at 0."""
    with JwksServer() as server:
        yield server
