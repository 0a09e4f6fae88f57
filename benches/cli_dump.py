# Writes a synthetic `strata export` dump of N keys with two versions each (and an
# optional padding of P bytes per value) to stdout, for docs/benchmarks.md ("strata CLI"):
#   python3 benches/cli_dump.py 1000000 > dump.jsonl      # 276 MiB
#   python3 benches/cli_dump.py 1000000 400 > dump.jsonl  # 1.0 GiB
import sys
n = int(sys.argv[1]); pad = int(sys.argv[2]) if len(sys.argv) > 2 else 0
out = sys.stdout
base = 1_790_000_000_000_000
nil = "00000000-0000-0000-0000-000000000000"
last = 1 + 2 * n
out.write('{"stratadb_export":1,"version":%d}\n' % last)
filler = "x" * pad
w = out.write
for i in range(n):
    v1 = 2 + i; v2 = 2 + n + i
    k = "user:%07d" % i
    w('{"run":"%s","primitive":"kv","key":"%s","history":[{"v":%d,"ts":%d,"value":{"n":%d,"name":"user-%d%s","tags":["a","b"]}},{"v":%d,"ts":%d,"value":{"n":%d,"name":"user-%d%s","tags":["a","b","c"]}}]}\n'
      % (nil, k, v1, base + v1, i, i, filler, v2, base + v2, i + 1, i, filler))
w('{"run":"%s","primitive":"run","key":"%s","history":[{"v":1,"ts":%d,"value":{"created_at":%d,"error":null,"metadata":null,"retention":"KeepAll","run_id":"%s","state":"Active","updated_at":%d}}]}\n' % (nil, nil, base + 1, base, nil, base))
w('{"end":true,"records":%d,"entries":%d}\n' % (n + 1, 2 * n + 1))
