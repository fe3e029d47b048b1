export * from './config';
export * from './errors';
export * from './files';
export * from './http';
export * from './instruments';
export * from './log';
export * from './metrics';
export * from './rfb-auth';
