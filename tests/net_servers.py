"""Real servers on 127.0.0.1 for the domain checks: an ASGI app under uvicorn, a scripted
HTTP server, and a small DNS server answering TXT queries (dnspython's wire format)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import uvicorn


class AsgiServer:
    """``with AsgiServer(app) as server:`` serves ``app`` at ``server.address`` (host:port)."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="test-uvicorn", daemon=True)
        self.address = ""

    def __enter__(self) -> AsgiServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


Reply = tuple[int, dict[str, str], bytes]


class ScriptedHttpServer:
    """Answers every GET with ``reply(path, host)``: status, headers, body."""

    def __init__(self, reply: Callable[[str, str], Reply]) -> None:
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                host = self.headers.get("Host", "")
                outer.requests.append((self.path, host))
                status, headers, body = reply(self.path, host)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-http", daemon=True)
        self.address = f"127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ScriptedHttpServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class TxtDnsServer:
    """A UDP DNS server on 127.0.0.1 answering TXT queries from ``records`` (name -> values)
    and A/AAAA queries from ``addresses`` (name -> one list of addresses per answer, given in
    turn, the last repeated: a rebinding server); other names get NXDOMAIN. ``asked`` counts
    the address queries per name."""

    def __init__(self, records: dict[str, list[str]], addresses: dict[str, list[list[str]]] | None = None) -> None:
        self.records = records
        self.addresses = addresses or {}
        self.asked: dict[str, int] = {}
        self._answers: dict[str, int] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            if name in self.records and question.rdtype == dns.rdatatype.TXT:
                quoted = ['"' + value.replace('"', '\\"') + '"' for value in self.records[name]]
                response.answer.append(
                    dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, *quoted)
                )
            elif name in self.addresses and question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                self.asked[name] = self.asked.get(name, 0) + 1
                turns = self.addresses[name]
                # one answer set per A query (AAAA queries see the same set as the A before)
                if question.rdtype == dns.rdatatype.A:
                    self._answers[name] = self._answers.get(name, -1) + 1
                chosen = turns[min(max(self._answers.get(name, 0), 0), len(turns) - 1)]
                v6 = question.rdtype == dns.rdatatype.AAAA
                matching = [a for a in chosen if (":" in a) == v6]
                if matching:
                    response.answer.append(
                        dns.rrset.from_text(question.name, 0, dns.rdataclass.IN, question.rdtype, *matching)
                    )
            elif name not in self.records and name not in self.addresses:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self._sock.sendto(response.to_wire(), peer)

    def __enter__(self) -> TxtDnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
