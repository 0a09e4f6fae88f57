#!/usr/bin/env bash
# Prints the results table row of each target from logs/<t>.log and corpus/<t>/.
cd "$(dirname "$0")"
echo "| target | executions | time | exec/s | cov | ft | peak RSS | corpus (files / bytes) | crashes |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in codec wal_segment snapshot vector_index json_path search_filter; do
    log=logs/$t.log
    [ -f "$log" ] || continue
    execs=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
    secs=$(grep -o 'runs in [0-9]* second' "$log" | grep -o '[0-9]*' | tail -1)
    eps=$(grep -o 'average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    rss=$(grep -o 'peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$')
    last=$(grep -E 'DONE|(NEW|REDUCE|pulse).*cov:' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    files=$(ls "corpus/$t" | wc -l)
    bytes=$(cat corpus/"$t"/* | wc -c)
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "| \`$t\` | $execs | ${secs} s | $eps | $cov | $ft | ${rss} MB | $files / $bytes | $crashes |"
done
