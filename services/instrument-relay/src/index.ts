export * from './app';
export * from './config';
export * from './control';
export * from './rfb-filter';
export * from './sessions';
