#!/bin/sh
# Unary ttrpc vs gRPC (Kestrel, HTTP/2) over a Unix socket: median latency and throughput, printed as ratios.
# Arguments (all optional): runs, latency calls per run, throughput calls per run, concurrency, payload bytes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec dotnet run -c Release --project "$here/FirecrackerContainerd.Bench/FirecrackerContainerd.Bench.csproj" -- "$@"
