export * from './app';
export * from './config';
export * from './paths';
export * from './queue';
export * from './transfer';
