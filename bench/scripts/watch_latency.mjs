// Watch latency: WATCHERS Server-Sent Events streams (one entity each) and a writer pacing
// RATE PUTs per second over those entities for SECONDS; prints one JSON line of latencies
// (PUT sent -> event parsed, so the write itself is included). Node: cheap enough on the
// client side that the service, not the load generator, is what is measured.
import http from "node:http";

const [url, watchers, rate, seconds] = [
  process.env.BENCH_URL, Number(process.env.WATCHERS), Number(process.env.RATE),
  Number(process.env.SECONDS),
];
const base = new URL(url);
const sent = new Map();
const latencies = [];
const puts = []; // each PUT's own round trip, sent -> answered: what the write alone took
let errors = 0;
const streams = [];

function watch(entity) {
  return new Promise((ready) => {
    const req = http.get(
      { host: base.hostname, port: base.port, agent: false,
        path: `/v1/watchbench/watch?domain=misc&entity=${entity}` },
      (res) => {
        if (res.statusCode !== 200) { errors++; ready(); return; }
        res.setEncoding("utf8");
        let buffer = "";
        res.on("data", (chunk) => {
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split("\n").find((l) => l.startsWith("data: "));
            if (data) {
              const n = JSON.parse(data.slice(6)).value.n;
              if (sent.has(n)) latencies.push(performance.now() - sent.get(n));
            }
          }
        });
        ready();
      },
    );
    req.on("error", () => { errors++; ready(); });
    streams.push(req);
  });
}

await Promise.all(Array.from({ length: watchers }, (_, i) => watch(`w${i}`)));
await new Promise((r) => setTimeout(r, 500));
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const total = Math.round(rate * seconds);
const start = performance.now();
const writes = [];
for (let n = 0; n < total; n++) {
  const due = start + (n * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const body = JSON.stringify({ n });
  writes.push(new Promise((done) => {
    const req = http.request(
      { host: base.hostname, port: base.port, agent, method: "PUT",
        path: `/v1/watchbench/misc/w${n % watchers}/records/k${n % 7}`,
        headers: { "content-type": "application/json", "content-length": body.length } },
      (res) => {
        res.resume();
        if (res.statusCode >= 300) errors++;
        res.on("end", () => { puts.push(performance.now() - sent.get(n)); done(); });
      },
    );
    req.on("error", () => { errors++; done(); });
    sent.set(n, performance.now());
    req.end(body);
  }));
}
await Promise.all(writes);
const elapsed = (performance.now() - start) / 1000;
// The last events arrive (at most 5 s more).
for (let waited = 0; latencies.length < total && waited < 5000; waited += 50) {
  await new Promise((r) => setTimeout(r, 50));
}
for (const s of streams) s.destroy();
agent.destroy();
latencies.sort((a, b) => a - b);
puts.sort((a, b) => a - b);
const pctOf = (xs, p) => xs.length ? xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN;
const pct = (p) => pctOf(latencies, p);
console.log("BENCH " + JSON.stringify({
  events: latencies.length, writes: total, elapsed, errors, p50: pct(50), p99: pct(99),
  put_p50: pctOf(puts, 50), put_p99: pctOf(puts, 99),
}));
