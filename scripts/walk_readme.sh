#!/usr/bin/env bash
# Walk through the README's commands in a real 80-column terminal (a tmux window) and print
# what the window showed, scrollback included: what a new user sees at the default width.
#
#   scripts/walk_readme.sh [COLUMNS] > walk.txt
#
# Everything happens in a fresh temporary directory, on the built-in simulator; nothing
# reaches the network. Needs tmux and an installed rtrec (the venv's `rtrec` on PATH).
set -euo pipefail
columns=${1:-80}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'tmux -L "rtrec-walk-$$" kill-server 2>/dev/null || true; rm -rf "$work"' EXIT
bundles="$repo/fixtures/sessions"

cat >"$work/walk.sh" <<EOF
cd "$work"
step() { printf '\n\$ %s\n' "\$*"; "\$@" || printf '[exit %s]\n' "\$?"; }
step rtrec demo
sid=\$(rtrec sessions --format csv | tail -1 | cut -d, -f1)
step rtrec sessions
step rtrec import "$bundles"
step rtrec sessions
step rtrec sessions --wide
step rtrec show "\${sid:0:13}"
step rtrec replay "$bundles/barge_in"
step rtrec replay "$bundles/barge_in" --stable-ids
step rtrec replay "$bundles/barge_in" --at 40
step rtrec diff "$bundles/function_call" "$bundles/function_call_beta"
step rtrec replay "$bundles/voice_turn" --stable-ids --golden "$bundles/voice_turn/golden.json"
step rtrec export "\${sid:0:13}" --out bundle
step rtrec export --all --out all
step rtrec import all --db other.duckdb
step rtrec show bundle
step rtrec report bundle -o report.html
step rtrec audio "\${sid:0:13}" -o call.wav
step rtrec audio "$bundles/voice_turn" --item item_cjkdxjmxslCJTO6jzMrEE -o item.flac
step rtrec sql "SELECT * FROM session_summary"
step rtrec sql "SELECT session_id, turns, cost_usd FROM session_summary" --format csv
step rtrec export-parquet lake/
step rtrec sql --parquet lake/ "SELECT count(*) AS sessions FROM sessions"
step rtrec index --redo
step rtrec repair
step rtrec check-events "$bundles/voice_turn/events.jsonl"
rtrec record --listen 127.0.0.1:0 --upstream sim --db recorded.duckdb >record.url 2>record.err &
recorder=\$!
until [ -s record.url ]; do sleep 0.2; done
step rtrec replay "$bundles/text_turn" --drive "\$(head -1 record.url)" --pace instant --db driven.duckdb
kill -INT \$recorder; wait \$recorder || true
printf '\n\$ rtrec record --listen 127.0.0.1:0 --upstream sim  (its stderr)\n'; cat record.err
rtrec playback "$bundles/weather-ga" --serve 127.0.0.1:0 >playback.url 2>playback.err &
player=\$!
until [ -s playback.url ]; do sleep 0.2; done
step rtrec replay "$bundles/weather-ga" --drive "\$(head -1 playback.url)" --pace instant --db played.duckdb
kill -INT \$player; wait \$player || true
step rtrec show nope
step rtrec sessions --db nowhere.duckdb
printf '\nwalk done\n'
EOF

tmux -L "rtrec-walk-$$" -f /dev/null new-session -d -s walk -x "$columns" -y 50 \
    "bash --norc --noprofile"
tmux -L "rtrec-walk-$$" set-option -g history-limit 200000
tmux -L "rtrec-walk-$$" set-option -g remain-on-exit on
# the pane is created before the history limit applies: start the walk in a new window
tmux -L "rtrec-walk-$$" new-window -t walk \
    "env -u COLUMNS PATH='$PATH' bash --norc --noprofile '$work/walk.sh'; tmux -L rtrec-walk-$$ wait-for -S walked"
tmux -L "rtrec-walk-$$" wait-for walked
tmux -L "rtrec-walk-$$" capture-pane -p -S - -t walk:1
