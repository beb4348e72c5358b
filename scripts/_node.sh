# Sourced by the scripts that need the Node.js tools (buf, protoc-gen-es, the TypeScript SDK's own):
# installs client/typescript's dependencies from its lock file when they are missing or the lock changed,
# and puts their binaries on PATH.
ts_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../client/typescript" && pwd)"
ts_stamp="$ts_root/node_modules/.installed-$(sha256sum "$ts_root/package-lock.json" | cut -c1-16)"
if [ ! -f "$ts_stamp" ]; then
    exec {node_lock}>"$ts_root/.node_modules.lock"
    flock "$node_lock"
    if [ ! -f "$ts_stamp" ]; then
        (cd "$ts_root" && npm ci --no-audit --no-fund --loglevel=error)
        rm -f "$ts_root"/node_modules/.installed-*
        touch "$ts_stamp"
    fi
    exec {node_lock}>&-
    unset node_lock
fi
export PATH="$ts_root/node_modules/.bin:$PATH"
