// ipx behind node:http for the benchmark (copied next to ipx's node_modules by benchmarks/systems.py).
// Reads IPX_BENCH_DIR (fixtures root), IPX_BENCH_PORT and IPX_BENCH_SHARP_OPTIONS (JSON);
// IPX_BENCH_HTTP_DOMAINS (comma-separated hosts) also lets it fetch http(s) sources from those hosts.
// ipx keeps no result cache: each request reads the source and runs sharp.
import { createServer } from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage, ipxHttpStorage } from "ipx";

const dir = process.env.IPX_BENCH_DIR;
const port = Number(process.env.IPX_BENCH_PORT);
const sharpOptions = JSON.parse(process.env.IPX_BENCH_SHARP_OPTIONS || "{}");

const domains = process.env.IPX_BENCH_HTTP_DOMAINS;
const httpStorage = domains ? ipxHttpStorage({ domains: domains.split(",") }) : undefined;

const ipx = createIPX({ storage: ipxFSStorage({ dir }), httpStorage, sharpOptions });
const server = createServer(createIPXNodeServer(ipx));
server.listen(port, "127.0.0.1", () => console.log(`ipx listening on 127.0.0.1:${port}, dir ${dir}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
