// The per-user session launcher (issue 7): podman's REST API or plain processes. Not wired yet.
export {};
