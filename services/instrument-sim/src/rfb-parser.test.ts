import { SERVER_PIXEL_FORMAT, writePixelFormat } from './pixel-format';
import { type ClientMessage, ClientMessageParser, MAX_CUT_TEXT_BYTES, MAX_ENCODINGS, RfbProtocolError } from './rfb-parser';

function setPixelFormat(): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 0]), writePixelFormat({ ...SERVER_PIXEL_FORMAT, bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0, bigEndian: true })]);
}

function setEncodings(list: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * list.length);
  b.writeUInt8(2, 0);
  b.writeUInt16BE(list.length, 2);
  list.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
  return b;
}

function updateRequest(incremental: boolean, x: number, y: number, w: number, h: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt8(3, 0);
  b.writeUInt8(incremental ? 1 : 0, 1);
  [x, y, w, h].forEach((v, i) => b.writeUInt16BE(v, 2 + 2 * i));
  return b;
}

function key(down: boolean, keysym: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(4, 0);
  b.writeUInt8(down ? 1 : 0, 1);
  b.writeUInt32BE(keysym, 4);
  return b;
}

function pointer(mask: number, x: number, y: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt8(5, 0);
  b.writeUInt8(mask, 1);
  b.writeUInt16BE(x, 2);
  b.writeUInt16BE(y, 4);
  return b;
}

function cutText(length: number, fill = 0x61): Buffer {
  const b = Buffer.alloc(8 + length, fill);
  b.writeUInt32BE(0x06000000, 0); // type 6 and three bytes of padding
  b.writeUInt32BE(length, 4);
  return b;
}

const STREAM = Buffer.concat([
  setPixelFormat(),
  setEncodings([0, -223, 7]),
  updateRequest(false, 0, 0, 1024, 768),
  cutText(300),
  key(true, 0xff51),
  pointer(1, 500, 400),
  setEncodings([]),
  updateRequest(true, 10, 20, 30, 40),
  key(false, 0xff51),
  pointer(0, 65535, 0),
]);

function parseInChunks(data: Buffer, size: number | (() => number)): ClientMessage[] {
  const parser = new ClientMessageParser();
  const out: ClientMessage[] = [];
  for (let i = 0; i < data.length; ) {
    const n = typeof size === 'number' ? size : size();
    parser.push(data.subarray(i, i + n), (m) => out.push(m));
    i += n;
  }
  expect(parser.pendingBytes).toBe(0);
  return out;
}

describe('client message parser', () => {
  test('decodes every message type', () => {
    const messages = parseInChunks(STREAM, STREAM.length);
    expect(messages.map((m) => m.type)).toEqual(['set-pixel-format', 'set-encodings', 'update-request', 'cut-text', 'key', 'pointer', 'set-encodings', 'update-request', 'key', 'pointer']);
    expect(messages[0]).toEqual({ type: 'set-pixel-format', format: expect.objectContaining({ bitsPerPixel: 16, bigEndian: true, redMax: 31, redShift: 11 }) as unknown });
    expect(messages[1]).toEqual({ type: 'set-encodings', encodings: [0, -223, 7] });
    expect(messages[2]).toEqual({ type: 'update-request', incremental: false, rect: { x: 0, y: 0, width: 1024, height: 768 } });
    expect(messages[3]).toEqual({ type: 'cut-text', length: 300 });
    expect(messages[4]).toEqual({ type: 'key', down: true, keysym: 0xff51 });
    expect(messages[5]).toEqual({ type: 'pointer', mask: 1, x: 500, y: 400 });
    expect(messages[6]).toEqual({ type: 'set-encodings', encodings: [] });
    expect(messages[9]).toEqual({ type: 'pointer', mask: 0, x: 65535, y: 0 });
  });

  test('one byte at a time gives exactly the same messages', () => {
    expect(parseInChunks(STREAM, 1)).toEqual(parseInChunks(STREAM, STREAM.length));
  });

  test('chunks of any size give the same messages', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 1 + (seed % 37);
    };
    const whole = parseInChunks(STREAM, STREAM.length);
    for (let run = 0; run < 20; run++) expect(parseInChunks(STREAM, random)).toEqual(whole);
  });

  test('cut text is skipped as it streams, never held', () => {
    const parser = new ClientMessageParser();
    const data = Buffer.concat([cutText(64 * 1024), key(true, 0x41)]);
    const out: ClientMessage[] = [];
    let maxPending = 0;
    for (let i = 0; i < data.length; i++) {
      parser.push(data.subarray(i, i + 1), (m) => out.push(m));
      maxPending = Math.max(maxPending, parser.pendingBytes);
    }
    expect(out).toEqual([
      { type: 'cut-text', length: 64 * 1024 },
      { type: 'key', down: true, keysym: 0x41 },
    ]);
    expect(maxPending).toBeLessThan(8);
  });

  test('cut text up to the cap is accepted; beyond it the stream is refused', () => {
    const ok = new ClientMessageParser();
    const header = cutText(0);
    header.writeUInt32BE(MAX_CUT_TEXT_BYTES, 4);
    expect(() => ok.push(header, () => undefined)).not.toThrow();

    header.writeUInt32BE(MAX_CUT_TEXT_BYTES + 1, 4);
    expect(() => new ClientMessageParser().push(header, () => undefined)).toThrow(RfbProtocolError);
  });

  test('more encodings than the cap are refused', () => {
    expect(() => parseInChunks(setEncodings(new Array<number>(MAX_ENCODINGS).fill(0)), 1)).not.toThrow();
    const parser = new ClientMessageParser();
    expect(() => parser.push(setEncodings(new Array<number>(MAX_ENCODINGS + 1).fill(0)).subarray(0, 4), () => undefined)).toThrow(/SetEncodings lists 257/);
  });

  test('an unknown type ends the stream, after the messages before it; later input is refused too', () => {
    const parser = new ClientMessageParser();
    const out: ClientMessage[] = [];
    const data = Buffer.concat([key(true, 0x61), Buffer.from([250, 0, 1, 2]), key(false, 0x61)]);
    expect(() => parser.push(data, (m) => out.push(m))).toThrow(/unknown client message type 250/);
    expect(out).toEqual([{ type: 'key', down: true, keysym: 0x61 }]);
    expect(() => parser.push(key(true, 0x62), (m) => out.push(m))).toThrow(RfbProtocolError);
    expect(out).toHaveLength(1);
  });

  test('an unknown type is caught from its first byte, even fed alone', () => {
    expect(() => new ClientMessageParser().push(Buffer.from([1]), () => undefined)).toThrow(RfbProtocolError);
  });
});
