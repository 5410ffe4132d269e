#!/usr/bin/env python3
"""An in-memory S3 endpoint on loopback for the durable local broker (tansu's `s3://` storage).

    scripts/s3_local.py --port 59094

Why not moto_server: tansu finds a partition's segments by listing every object under the
partition's prefix on each fetch, and moto filters the whole bucket and renders every page in
Python per list; after about 700 edits moto held a core and the pipeline slowed to 0.3 edits/s
(README, "Faults"). Here keys are kept sorted (a list is a bisect plus one page) and a rendered
page is reused until something under its prefix changes.

What tansu's object store uses, and nothing more: create bucket (PUT /b), PUT (with If-Match /
If-None-Match), GET and HEAD (with If-Match / If-None-Match, Range), DELETE, ListObjectsV2
(prefix, start-after, continuation-token, max-keys, delimiter). No authentication: it listens on
127.0.0.1 only. State lives in memory: it survives broker restarts, not its own.
"""
import argparse
import bisect
import hashlib
import http.server
import threading
import time
import urllib.parse
from email.utils import formatdate
from xml.sax.saxutils import escape


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.buckets = {}  # name -> {"objects": {key: (body, etag, mtime)}, "keys": sorted list}
        self.pages = {}    # (bucket, query tuple) -> (generation at render, xml)
        self.generation = {}  # (bucket, directory) -> counter, bumped when anything under it changes


def changed(store, bucket, key):
    """Invalidates the cached listings of every directory above `key`."""
    for d in [""] + [key[:i] for i, c in enumerate(key) if c == "/"]:
        store.generation[(bucket, d)] = store.generation.get((bucket, d), 0) + 1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store = None

    def log_message(self, fmt, *args):  # quiet: one line per request would cost more than the work
        pass

    def split(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        return bucket, key, urllib.parse.parse_qs(url.query, keep_blank_values=True)

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code):
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'.encode()
        self.reply(status, body, {"Content-Type": "application/xml"})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def precondition(self, current):
        """412/304 for If-Match / If-None-Match against the current object (None: absent)."""
        etag = current[1] if current else None
        want = self.headers.get("If-Match")
        if want is not None and etag is None:
            return 404
        if want is not None and want.strip() != "*" and want.strip() != etag:
            return 412
        none = self.headers.get("If-None-Match")
        if none is not None and etag is not None and (none.strip() == "*" or none.strip() == etag):
            return 304 if self.command in ("GET", "HEAD") else 412
        return None

    def do_PUT(self):
        bucket, key, _ = self.split()
        data = self.body()
        s = self.store
        with s.lock:
            if key is None:
                if bucket in s.buckets:
                    return self.error(409, "BucketAlreadyOwnedByYou")
                s.buckets[bucket] = {"objects": {}, "keys": []}
                return self.reply(200)
            b = s.buckets.get(bucket)
            if b is None:
                return self.error(404, "NoSuchBucket")
            current = b["objects"].get(key)
            failed = self.precondition(current)
            if failed == 404:
                return self.error(404, "NoSuchKey")
            if failed:
                return self.error(412, "PreconditionFailed")
            source = self.headers.get("x-amz-copy-source")
            copied = source is not None
            if copied:
                sb, _, sk = urllib.parse.unquote(source).lstrip("/").partition("/")
                original = s.buckets.get(sb, {}).get("objects", {}).get(sk)
                if original is None:
                    return self.error(404, "NoSuchKey")
                data = original[0]
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            if current is None:
                bisect.insort(b["keys"], key)
            b["objects"][key] = (data, etag, time.time())
            changed(s, bucket, key)
        if copied:
            body = f'<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><ETag>{escape(etag)}</ETag></CopyObjectResult>'
            return self.reply(200, body.encode(), {"Content-Type": "application/xml", "ETag": etag})
        self.reply(200, headers={"ETag": etag})

    def do_DELETE(self):
        bucket, key, _ = self.split()
        s = self.store
        with s.lock:
            b = s.buckets.get(bucket)
            if b is None or key is None:
                return self.error(404, "NoSuchBucket")
            if b["objects"].pop(key, None) is not None:
                b["keys"].pop(bisect.bisect_left(b["keys"], key))
                changed(s, bucket, key)
        self.reply(204)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        bucket, key, query = self.split()
        s = self.store
        with s.lock:
            b = s.buckets.get(bucket)
            if b is None:
                return self.error(404, "NoSuchBucket")
            if key is None:
                return self.list(bucket, b, query)
            current = b["objects"].get(key)
            if current is None:
                return self.error(404, "NoSuchKey")
            failed = self.precondition(current)
        if failed == 304:
            return self.reply(304, headers={"ETag": current[1]})
        if failed == 404:
            return self.error(404, "NoSuchKey")
        if failed:
            return self.error(412, "PreconditionFailed")
        data, etag, mtime = current
        headers = {"ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True), "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            try:
                if first == "":
                    start, end = max(len(data) - int(last), 0), len(data) - 1
                else:
                    start, end = int(first), (int(last) if last else len(data) - 1)
            except ValueError:
                return self.error(400, "InvalidArgument")
            end = min(end, len(data) - 1)
            if start > end:
                return self.error(416, "InvalidRange")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self.reply(206, data[start:end + 1], headers)
        self.reply(200, data, headers)

    def list(self, bucket, b, query):
        """ListObjectsV2 (called with the lock held)."""
        q = {k: v[0] for k, v in query.items()}
        prefix = q.get("prefix", "")
        after = q.get("continuation-token") or q.get("start-after") or ""
        try:
            limit = max(1, min(int(q.get("max-keys", "1000")), 1000))
        except ValueError:
            return self.error(400, "InvalidArgument")
        delimiter = q.get("delimiter", "")
        s = self.store
        cache_key = (bucket, prefix, after, limit, delimiter)
        g = (bucket, prefix.rsplit("/", 1)[0] if "/" in prefix else "")
        generation = s.generation.get(g, 0) if prefix.endswith("/") and not delimiter else None
        cached = s.pages.get(cache_key)
        if generation is not None and cached and cached[0] == generation:
            return self.reply(200, cached[1], {"Content-Type": "application/xml"})
        keys = b["keys"]
        # A token that is a common prefix ("x/") continues after everything under it.
        skip = after + "\U0010ffff" if delimiter and after.endswith(delimiter) else after
        i = bisect.bisect_right(keys, skip) if after else bisect.bisect_left(keys, prefix)
        i = max(i, bisect.bisect_left(keys, prefix))
        contents, prefixes, last, truncated = [], [], None, False
        while i < len(keys) and keys[i].startswith(prefix):
            if len(contents) + len(prefixes) == limit:
                truncated = True
                break
            k = keys[i]
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                p = prefix + rest.split(delimiter, 1)[0] + delimiter
                prefixes.append(p)
                last = p
                i = bisect.bisect_left(keys, p + "\U0010ffff")  # skip the rest of that "directory"
                continue
            data, etag, mtime = b["objects"][k]
            modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime))
            contents.append(f"<Contents><Key>{escape(k)}</Key><LastModified>{modified}</LastModified>"
                            f"<ETag>{escape(etag)}</ETag><Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass></Contents>")
            last = k
            i += 1
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
                 f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated and last is not None:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        parts += contents
        parts += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        parts.append("</ListBucketResult>")
        body = "".join(parts).encode()
        if generation is not None:
            if len(s.pages) > 10_000:  # stale pages of old offsets: start over
                s.pages.clear()
            s.pages[cache_key] = (generation, body)
        self.reply(200, body, {"Content-Type": "application/xml"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    Handler.store = Store()
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"s3_local listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
