// The package ships no types. Its default export is an Emscripten module factory; fft.ts
// checks the result against the few members it uses (PffftModule).
declare module '@echogarden/pffft-wasm/simd' {
  const factory: () => Promise<unknown>;
  export default factory;
}
declare module '@echogarden/pffft-wasm' {
  const factory: () => Promise<unknown>;
  export default factory;
}
