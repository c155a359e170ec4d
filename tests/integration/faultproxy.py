#!/usr/bin/python3
"""faultproxy.py: an HTTP proxy between an S3 client and a real S3 server that
injects the failures networks and servers produce, following a plan.

    faultproxy.py --upstream http://127.0.0.1:PORT --port-file F --log L --plan PLAN

PLAN is a comma-separated list of METHOD:FAULT items (METHOD may be *,
METHOD@TEXT matches only requests whose path contains TEXT, and
METHOD@?TEXT only those whose query string contains TEXT). Each request
takes the first unused item whose method matches, and gets its fault
instead of (or on top of) the real answer; requests with no matching item
are forwarded untouched. Faults:
    503 500 429     answer with that status and an S3 error document
                    (SlowDown for 503, InternalError for 500, TooManyRequests)
    403             answer 403 AccessDenied (a permanent failure)
    reset           close the connection without answering
    truncate        forward, but send only half of the body, then close
    stall           read the request, then send nothing for 60 s
    200error        answer 200 with an <Error> document (CopyObject style)
    hold            forward at once, answer 3 s later (a reply that arrives
                    after what happened meanwhile)
    pass            forward untouched (to let earlier matching requests by)
The log gets one line per request: "METHOD PATH -> FAULT|forwarded STATUS".
The Host header is forwarded as the client sent it, so SigV4 signatures made
for the proxy's address still verify at the server.
--log-headers PREFIX[,PREFIX...] also logs, before that line, the request
headers whose lower-case names start with a PREFIX:
"HEADERS METHOD PATH name=value; name=value".
"""
import argparse, http.client, socket, socketserver, sys, threading, time, urllib.parse

lock = threading.Lock()
plan = []
log = None


def take(method, target):
    path, _, query = target.partition("?")
    with lock:
        for i, (m, fault) in enumerate(plan):
            m, _, text = m.partition("@")
            where = path
            if text.startswith("?"):
                where, text = query, text[1:]
            if m in ("*", method) and text in where:
                del plan[i]
                return fault
    return None


def note(line):
    with lock:
        log.write(line + "\n")
        log.flush()


def error_doc(code, msg):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{msg}</Message><RequestId>faultproxy</RequestId></Error>").encode()


class Handler(socketserver.StreamRequestHandler):
    def read_request(self):
        line = self.rfile.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = self.rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            name, value = h.decode("latin-1").split(":", 1)
            headers.append((name.strip(), value.strip()))
        length = 0
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "expect":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        return method, target, headers, body

    def answer(self, status, reason, body, extra=()):
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        head += "Content-Type: application/xml\r\n"
        for k, v in extra:
            head += f"{k}: {v}\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)

    def handle(self):
        while True:
            try:
                req = self.read_request()
            except (ValueError, ConnectionError):
                return
            if req is None:
                return
            method, target, headers, body = req
            path = target.split("?")[0]
            fault = take(method, target)
            if self.server.log_headers:
                shown = [f"{k.lower()}={v}" for k, v in headers
                         if k.lower().startswith(self.server.log_headers)]
                note(f"HEADERS {method} {target} " + "; ".join(shown))
            if fault in ("503", "500", "429", "403"):
                code = {"503": "SlowDown", "500": "InternalError", "429": "TooManyRequests",
                        "403": "AccessDenied"}[fault]
                note(f"{method} {path} -> {fault}")
                self.answer(int(fault), code, b"" if method == "HEAD" else error_doc(code, "injected"))
                continue
            if fault == "reset":
                note(f"{method} {path} -> reset")
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            if fault == "stall":
                note(f"{method} {path} -> stall")
                time.sleep(60)
                return
            if fault == "200error":
                note(f"{method} {path} -> 200error")
                self.answer(200, "OK", error_doc("InternalError", "injected after 200"))
                continue
            status, reason, rheaders, rbody = self.forward(method, target, headers, body)
            if fault == "hold":
                note(f"{method} {path} -> hold {status}")
                time.sleep(3)
            if fault == "truncate" and len(rbody) > 1:
                note(f"{method} {path} -> truncate {status}")
                head = f"HTTP/1.1 {status} {reason}\r\n"
                for k, v in rheaders:
                    if k.lower() not in ("transfer-encoding", "connection"):
                        head += f"{k}: {v}\r\n"
                self.wfile.write(head.encode() + b"\r\n" + rbody[: len(rbody) // 2])
                self.wfile.flush()
                return
            note(f"{method} {path} -> forwarded {status}")
            out = f"HTTP/1.1 {status} {reason}\r\n"
            for k, v in rheaders:
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    out += f"{k}: {v}\r\n"
            if method != "HEAD":
                out += f"Content-Length: {len(rbody)}\r\n"
            else:
                for k, v in rheaders:
                    if k.lower() == "content-length":
                        out += f"{k}: {v}\r\n"
            self.wfile.write(out.encode() + b"\r\n" + (b"" if method == "HEAD" else rbody))
            self.wfile.flush()

    def forward(self, method, target, headers, body):
        up = urllib.parse.urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            if k.lower() in ("connection", "expect"):
                continue
            conn.putheader(k, v)
        conn.endheaders(body if body else None)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, r.reason, r.getheaders(), data


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global log
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--plan", default="")
    ap.add_argument("--log-headers", default="")
    a = ap.parse_args()
    for item in filter(None, a.plan.split(",")):
        m, f = item.split(":", 1)
        plan.append((m, f))
    log = open(a.log, "a")
    srv = Server(("127.0.0.1", 0), Handler)
    srv.upstream = a.upstream
    srv.log_headers = tuple(filter(None, a.log_headers.lower().split(",")))
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
