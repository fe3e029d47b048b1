export * from './caller';
export * from './config';
export * from './enrollment';
export * from './ood-escape';
export * from './ood-index';
export * from './schema';
export * from './store';
export * from './usermap';
