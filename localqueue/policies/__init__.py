"""Built-in worker policies. Each module is a plugin registered under its own
name ("retry", "pacing", "breaker", "handler"), through the same hooks a
user's policy plugin implements; decisions are ``trylast`` so users win."""
