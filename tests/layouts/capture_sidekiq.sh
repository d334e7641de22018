#!/usr/bin/env bash
# How tests/layouts/sidekiq-*.keys was made: Debian's ruby-sidekiq against a scratch
# redis-server (db 3), jobs pushed by Sidekiq::Client, then one real Sidekiq process.
# Each line: phase (busy: a job running; idle: after the process stopped), key, type,
# and "ttl" or "none". Run from an empty folder with PORT set to a scratch server.
set -eu
PORT=${PORT:-6391}
cat > worker.rb <<RUBY
require "sidekiq"
Sidekiq.configure_server { |c| c.redis = { url: "redis://127.0.0.1:$PORT/3" } }
Sidekiq.configure_client { |c| c.redis = { url: "redis://127.0.0.1:$PORT/3" } }
class OkJob
  include Sidekiq::Worker
  def perform(x); sleep 3; end
end
class BoomJob
  include Sidekiq::Worker
  sidekiq_options retry: 1
  def perform; raise "boom"; end
end
class DeadJob
  include Sidekiq::Worker
  sidekiq_options retry: 0
  def perform; raise "dead"; end
end
RUBY
cat > push.rb <<'RUBY'
require "./worker"
Sidekiq.redis { |c| c.flushdb }
OkJob.perform_async(1)
OkJob.set(queue: "mailers").perform_async(2)
OkJob.perform_in(3600, 3)
BoomJob.perform_async
DeadJob.perform_async
6.times { OkJob.perform_async(9) }
RUBY
dump() { redis-cli -p "$PORT" -n 3 --scan | sort | while read -r k; do
  t=$(redis-cli -p "$PORT" -n 3 type "$k"); p=$(redis-cli -p "$PORT" -n 3 pttl "$k")
  [ "$p" = "-1" ] && p=none || p=ttl; echo "$1 $k $t $p"; done; }
ruby push.rb
timeout 9 sidekiq -r ./worker.rb -q default -q mailers -c 1 >sidekiq.log 2>&1 &
sleep 2; dump busy
wait || true
dump idle
