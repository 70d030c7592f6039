/* myriad.js: the browser client of myriad (served at /myriad.js). Plain JS, no dependencies.
 *
 * `new MyriadSocket(url, protocols?, options?)` behaves like the browser's WebSocket (onopen,
 * onmessage, onclose, onerror, addEventListener, send, close, readyState, binaryType,
 * bufferedAmount, url, protocol, extensions) and adds `transport`: "websocket", "sse" or "poll".
 * It tries a WebSocket first; when that fails or does not open within options.wsTimeout, Server-Sent
 * Events (EventSource) on the http(s) form of the URL; when no session event arrives within
 * options.sseTimeout (a buffering proxy holds the stream), long-polling. Messages to the server go
 * as POSTs of length-prefixed frames, one POST in flight at a time. The transport that worked is
 * remembered for the page (per host and path) and later sockets start there. After an abnormal
 * close (1006) it reconnects with exponential backoff and jitter, firing onclose for the drop and
 * onopen again (options.reconnect = false turns that off). The wire format is myriad's fallback
 * format: events `s<sid>`, `t<text>`, `u<base64 text>`, `b<base64>`, `c<code> <reason>`; uplink
 * frames `t<len>:<utf8>`, `b<len>:<bytes>`, `c<len>:<code> <reason>` (lengths in bytes).
 *
 * Options: wsTimeout (3000 ms), sseTimeout (3000 ms), pollTimeout (10000 ms: the poll session's
 * opening request), reconnect (true), reconnectMin (500 ms), reconnectMax (30000 ms),
 * maxPostBytes (65536: frames are batched into POST bodies up to this size; the server's limit).
 */
(function (global) {
  "use strict";

  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  const CHAIN = ["websocket", "sse", "poll"];
  const DEFAULTS = {
    wsTimeout: 3000, sseTimeout: 3000, pollTimeout: 10000, reconnect: true,
    reconnectMin: 500, reconnectMax: 30000, maxPostBytes: 65536,
  };
  const remembered = new Map(); // host + path -> the transport that last worked on this page
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  function makeEvent(type, init) {
    const C = type === "message" ? global.MessageEvent : type === "close" ? global.CloseEvent : null;
    if (typeof C === "function") return new C(type, init);
    const ev = new Event(type);
    for (const k in init) Object.defineProperty(ev, k, {value: init[k], enumerable: true});
    return ev;
  }

  function fromBase64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // A text/event-stream body (a poll response) as [{id, data}], parsed like EventSource does:
  // lines end at CRLF, CR or LF; one space after the colon is dropped; data lines joined by LF;
  // a blank line ends an event; comments (":...") and other fields are ignored.
  function parseEvents(text) {
    const events = [];
    let data = null, id = null;
    for (const line of text.split(/\r\n|\r|\n/)) {
      if (line === "") {
        if (data !== null) events.push({id: id, data: data});
        data = null;
        continue;
      }
      const colon = line.indexOf(":");
      if (colon === 0) continue;
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (field === "data") data = data === null ? value : data + "\n" + value;
      else if (field === "id") id = value;
    }
    return events;
  }

  // An uplink frame: {kind, bytes (Uint8Array) or blob, size (payload bytes)}.
  function frame(kind, data) {
    if (typeof data === "string") {
      const bytes = encoder.encode(data);
      return {kind: kind, bytes: bytes, size: bytes.length};
    }
    if (typeof Blob !== "undefined" && data instanceof Blob) return {kind: "b", blob: data, size: data.size};
    if (data instanceof ArrayBuffer) return {kind: "b", bytes: new Uint8Array(data.slice(0)), size: data.byteLength};
    if (ArrayBuffer.isView(data)) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      return {kind: "b", bytes: bytes, size: bytes.length};
    }
    return frame("t", String(data)); // what WebSocket.send does with other values
  }

  // The POST body for frames (Blobs read here, so their order is kept).
  async function body(frames) {
    const parts = [];
    let n = 0;
    for (const f of frames) {
      const bytes = f.bytes || new Uint8Array(await f.blob.arrayBuffer());
      const head = encoder.encode(f.kind + bytes.length + ":");
      parts.push(head, bytes);
      n += head.length + bytes.length;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const ok = (status) => status >= 200 && status < 300;

  // Every transport gets handlers h: open(info), fail() (before open: try the next transport),
  // message(string | ArrayBuffer), error(), closed(code, reason, wasClean); and returns a
  // connection: send(data), close(code, reason), abort() (silently), buffered().

  function websocket(sock, h) {
    let ws, opened = false;
    try {
      ws = new WebSocket(sock.url, sock._protocols); // undefined: no protocols
    } catch (e) {
      setTimeout(h.fail, 0);
      return {abort() {}, buffered: () => 0};
    }
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => { abort(); h.fail(); }, sock._opts.wsTimeout);
    function abort() {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(); } catch (e) { /* already closing */ }
    }
    ws.onopen = () => { opened = true; clearTimeout(timer); h.open({protocol: ws.protocol, extensions: ws.extensions}); };
    ws.onmessage = (ev) => h.message(ev.data);
    ws.onerror = () => { if (opened) h.error(); };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (opened) h.closed(ev.code, ev.reason, ev.wasClean); else h.fail();
    };
    return {
      send: (data) => ws.send(data),
      close: (code, reason) => (code === undefined ? ws.close() : ws.close(code, reason)),
      abort: abort,
      buffered: () => ws.bufferedAmount,
    };
  }

  // SSE ("sse") or long-polling ("poll") downlink, POST uplink.
  function fallback(sock, kind, h) {
    const base = sock._http, sep = base.indexOf("?") < 0 ? "?" : "&";
    const opts = sock._opts;
    const at = (params) => base + sep + params;
    let sid = null, opened = false, dead = false, es = null, ctrl = null, timer = null;
    let ack = 0, posting = false, closing = null, queued = 0;
    const queue = [];

    function get(url) {
      ctrl = new AbortController();
      return fetch(url, {cache: "no-store", signal: ctrl.signal});
    }
    function abort() {
      if (dead) return false;
      dead = true;
      clearTimeout(timer);
      if (es) { es.onmessage = es.onerror = null; es.close(); }
      if (ctrl) ctrl.abort();
      return true;
    }
    function finish(code, reason, clean) {
      if (!abort()) return;
      if (opened) h.closed(code, reason, clean); else h.fail();
    }

    function onEvent(data) {
      if (dead) return;
      const k = data.charAt(0), rest = data.slice(1);
      if (k === "s") {
        if (sid !== null) return;
        sid = rest;
        opened = true;
        clearTimeout(timer);
        h.open({});
        if (kind === "poll") poll();
      } else if (!opened) {
        return;
      } else if (k === "t") {
        h.message(rest);
      } else if (k === "u") {
        h.message(decoder.decode(fromBase64(rest)));
      } else if (k === "b") {
        h.message(fromBase64(rest).buffer);
      } else if (k === "c") {
        const sp = rest.indexOf(" ");
        const code = parseInt(sp < 0 ? rest : rest.slice(0, sp), 10);
        finish(code || 1005, sp < 0 ? "" : rest.slice(sp + 1), true);
      }
    }

    function poll() {
      if (dead) return;
      // The server answers within 25 s; no answer in 40 s: the connection is gone (1006).
      const watchdog = setTimeout(() => ctrl.abort(), 40000);
      get(at("myriad-session=" + encodeURIComponent(sid) + "&myriad-ack=" + ack)).then((r) => {
        clearTimeout(watchdog);
        if (r.status === 409) return null; // displaced by a newer poll: not a close
        if (!ok(r.status)) throw new Error("poll: " + r.status);
        return r.text();
      }).then((text) => {
        if (text === null) return setTimeout(poll, 100);
        for (const ev of parseEvents(text)) {
          if (dead) return;
          const seq = parseInt(ev.id, 10);
          if (isNaN(seq)) { onEvent(ev.data); continue; }
          if (seq <= ack) continue; // sent again: already had it
          ack = seq;
          onEvent(ev.data);
        }
        poll();
      }, () => { clearTimeout(watchdog); finish(1006, "", false); });
    }

    function enqueue(f) {
      queue.push(f);
      queued += f.size;
      pump();
    }

    // One POST in flight; what is queued meanwhile goes in the next one, in order.
    async function pump() {
      if (posting || dead || sid === null || queue.length === 0) return;
      posting = true;
      let n = 0, size = 0;
      while (n < queue.length && (n === 0 || size + queue[n].size + 12 <= opts.maxPostBytes)) {
        size += queue[n++].size + 12; // 12: the frame's head, at most
      }
      const batch = queue.slice(0, n);
      let status = 0;
      try {
        const payload = await body(batch);
        for (let wait = 100; ; wait = Math.min(wait * 2, 2000)) {
          try {
            const r = await fetch(at("myriad-session=" + encodeURIComponent(sid)),
              {method: "POST", body: payload, cache: "no-store"});
            status = r.status;
          } catch (e) {
            status = 0;
          }
          // 429: the session's queue toward us is full; the poll or stream drains it: retry.
          if (status !== 429 || dead) break;
          await sleep(wait);
        }
      } catch (e) {
        status = 0; // a Blob could not be read
      }
      posting = false;
      queue.splice(0, n);
      for (const f of batch) queued -= f.size;
      if (dead) return;
      if (ok(status)) {
        if (batch[n - 1].kind === "c") finish(closing[0], closing[1], true);
        else pump();
      } else if (status === 413) {
        // One message over the server's limit: close as a WebSocket server would (1009).
        const bye = "1009 message too big";
        fetch(at("myriad-session=" + encodeURIComponent(sid)),
          {method: "POST", body: encoder.encode("c" + bye.length + ":" + bye), cache: "no-store"}).catch(() => {});
        finish(1009, "message too big", false);
      } else {
        finish(1006, "", false); // network error, 404 (unknown session), 410 (closed), ...
      }
    }

    if (kind === "sse") {
      try {
        es = new EventSource(base);
      } catch (e) {
        setTimeout(() => finish(), 0);
        return {abort: abort, buffered: () => 0};
      }
      es.onmessage = (ev) => onEvent(ev.data);
      es.onerror = () => finish(1006, "", false); // refused, or the stream ended without `c`
      timer = setTimeout(() => finish(), opts.sseTimeout);
    } else {
      timer = setTimeout(() => finish(), opts.pollTimeout);
      get(at("myriad-transport=poll")).then((r) => (ok(r.status) ? r.text() : "")).then((text) => {
        const ev = parseEvents(text)[0];
        if (ev && ev.data.charAt(0) === "s") onEvent(ev.data); else finish();
      }, () => finish());
    }

    return {
      send(data) { enqueue(frame("t", data)); },
      close(code, reason) {
        // No code: 1000 on the wire; the close event says 1005 (no status), as a WebSocket's does.
        closing = [code === undefined ? 1005 : code, reason];
        enqueue(frame("c", (code === undefined ? 1000 : code) + " " + reason));
      },
      abort: abort,
      buffered: () => queued,
    };
  }

  class MyriadSocket extends EventTarget {
    constructor(url, protocols, options) {
      super();
      if (protocols && typeof protocols === "object" && !Array.isArray(protocols)) {
        options = protocols; // new MyriadSocket(url, options)
        protocols = undefined;
      }
      const u = new URL(url, global.location ? global.location.href : undefined);
      if (u.protocol === "http:") u.protocol = "ws:";
      else if (u.protocol === "https:") u.protocol = "wss:";
      if (u.protocol !== "ws:" && u.protocol !== "wss:") {
        throw new DOMException("MyriadSocket: the URL's scheme must be ws, wss, http or https", "SyntaxError");
      }
      u.hash = "";
      this.url = u.href;
      this._http = "http" + u.href.slice(2); // ws://... -> http://..., wss://... -> https://...
      this._origin = u.origin;
      this._key = u.host + u.pathname;
      this._protocols = protocols;
      this._opts = Object.assign({}, DEFAULTS, options || {});
      this.readyState = CONNECTING;
      this.protocol = this.extensions = "";
      this.transport = null; // the transport in use (or being tried)
      this._binaryType = "blob";
      this._conn = this._token = this._timer = null;
      this._retries = 0;
      this._stopped = false; // close() was called: no more reconnects
      for (const type of ["open", "message", "error", "close"]) {
        this["on" + type] = null;
        this.addEventListener(type, (ev) => {
          const f = this["on" + type];
          if (typeof f === "function") f.call(this, ev);
        });
      }
      this._start(false);
    }

    get binaryType() { return this._binaryType; }
    set binaryType(t) { if (t === "blob" || t === "arraybuffer") this._binaryType = t; }
    get bufferedAmount() { return this._conn ? this._conn.buffered() : 0; }

    send(data) {
      if (this.readyState === CONNECTING) throw new DOMException("MyriadSocket is CONNECTING", "InvalidStateError");
      if (this.readyState === OPEN) this._conn.send(data);
    }

    close(code, reason) {
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException("close code must be 1000 or 3000-4999", "InvalidAccessError");
      }
      reason = reason === undefined ? "" : String(reason);
      if (encoder.encode(reason).length > 123) throw new DOMException("close reason over 123 bytes", "SyntaxError");
      this._stopped = true;
      clearTimeout(this._timer);
      if (this.readyState === CONNECTING) {
        if (this._conn) this._conn.abort();
        this._conn = null;
        this._token = null;
        this.readyState = CLOSED;
        this._emit("error");
        this._emit("close", {code: 1006, reason: "", wasClean: false});
      } else if (this.readyState === OPEN) {
        this.readyState = CLOSING;
        this._conn.close(code, reason);
      }
    }

    _emit(type, init) { this.dispatchEvent(makeEvent(type, init || {})); }

    _start(again) {
      this._try(Math.max(0, CHAIN.indexOf(remembered.get(this._key))), again);
    }

    // Transport CHAIN[i]; on failure the next one. `again`: a reconnect (failures stay quiet).
    _try(i, again) {
      if (this._stopped) return;
      if (i >= CHAIN.length) {
        this._conn = null;
        if (again) return this._retry();
        this._emit("error");
        return this._closed(1006, "", false);
      }
      const kind = CHAIN[i], token = {};
      const live = () => this._token === token;
      this._token = token;
      this.transport = kind;
      this._conn = (kind === "websocket" ? websocket : (s, h) => fallback(s, kind, h))(this, {
        open: (info) => {
          if (!live()) return;
          remembered.set(this._key, kind);
          this._retries = 0;
          this.protocol = info.protocol || "";
          this.extensions = info.extensions || "";
          this.readyState = OPEN;
          this._emit("open");
        },
        fail: () => { if (live()) this._try(i + 1, again); },
        message: (data) => {
          if (!live() || this.readyState !== OPEN) return;
          if (typeof data !== "string" && this._binaryType === "blob") data = new Blob([data]);
          this._emit("message", {data: data, origin: this._origin});
        },
        error: () => { if (live()) this._emit("error"); },
        closed: (code, reason, clean) => {
          if (!live()) return;
          this._conn = null;
          this._token = null;
          this._closed(code, reason, clean);
        },
      });
    }

    _closed(code, reason, clean) {
      this.readyState = CLOSED;
      this._emit("close", {code: code, reason: reason, wasClean: clean});
      if (code === 1006 && this._opts.reconnect && !this._stopped) {
        this.readyState = CONNECTING;
        this._retry();
      }
    }

    _retry() {
      const o = this._opts;
      const d = Math.min(o.reconnectMax, o.reconnectMin * Math.pow(2, this._retries++));
      this._timer = setTimeout(() => this._start(true), d / 2 + Math.random() * d / 2);
    }
  }

  for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSING", CLOSING], ["CLOSED", CLOSED]]) {
    Object.defineProperty(MyriadSocket, name, {value: value, enumerable: true});
    Object.defineProperty(MyriadSocket.prototype, name, {value: value, enumerable: true});
  }

  global.MyriadSocket = MyriadSocket;
})(typeof window !== "undefined" ? window : globalThis);
