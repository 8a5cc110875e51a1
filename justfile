# Recipes mirroring bins/ (https://github.com/casey/just).

demo:
    bins/demo

test *ARGS:
    bins/test {{ARGS}}

bench:
    bins/bench

torture *ARGS:
    bins/torture {{ARGS}}

ci:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    bins/test
