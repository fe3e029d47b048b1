// The per-user session launcher (issue 7): podman's REST API or plain processes, one set of rules.
export * from './app';
export * from './backend';
export * from './config';
export * from './launcher';
export * from './mount-policy';
export * from './podman-backend';
export * from './podman-client';
export * from './process-backend';
export * from './store';
export * from './terminal';
export * from './terminal-page';
export * from './terminal-service';
