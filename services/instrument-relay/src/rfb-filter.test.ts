import { ClientMessageFilter, keyEvent, MAX_CUT_TEXT, MSG, pointerEvent, ProtocolViolation } from './rfb-filter';

function fbur(incremental: boolean): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt8(MSG.framebufferUpdateRequest, 0);
  b.writeUInt8(incremental ? 1 : 0, 1);
  b.writeUInt16BE(1024, 6);
  b.writeUInt16BE(768, 8);
  return b;
}

function setEncodings(codes: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * codes.length);
  b.writeUInt8(MSG.setEncodings, 0);
  b.writeUInt16BE(codes.length, 2);
  codes.forEach((c, i) => b.writeInt32BE(c, 4 + 4 * i));
  return b;
}

function cutText(text: string): Buffer {
  const b = Buffer.alloc(8 + text.length);
  b.writeUInt8(MSG.clientCutText, 0);
  b.writeUInt32BE(text.length, 4);
  b.write(text, 8, 'latin1');
  return b;
}

const xvp = Buffer.from([MSG.xvp, 0, 1, 2]); // xvp version 1, code 2: shutdown
const setPixelFormat = Buffer.concat([Buffer.from([MSG.setPixelFormat, 0, 0, 0]), Buffer.alloc(16, 7)]);

/** Feeds the stream one byte at a time, the harshest split there is. */
function byteByByte(filter: ClientMessageFilter, stream: Buffer): Buffer {
  const out: Buffer[] = [];
  for (const byte of stream) out.push(filter.push(Buffer.from([byte])));
  return Buffer.concat(out);
}

describe('ClientMessageFilter', () => {
  const stream = Buffer.concat([setPixelFormat, setEncodings([0, 1, -223]), fbur(false), keyEvent(true, 0x61), pointerEvent(10, 20, 1), cutText('hello'), xvp, fbur(true)]);

  test('a controller gets every message through except xvp, byte by byte or whole', () => {
    const expected = Buffer.concat([setPixelFormat, setEncodings([0, 1, -223]), fbur(false), keyEvent(true, 0x61), pointerEvent(10, 20, 1), cutText('hello'), fbur(true)]);
    for (const feed of [(f: ClientMessageFilter) => byteByByte(f, stream), (f: ClientMessageFilter) => f.push(stream)]) {
      const filter = new ClientMessageFilter({ mayControl: () => true });
      expect(feed(filter).equals(expected)).toBe(true);
      expect(filter.dropped).toEqual({ input: 0, xvp: 1 });
    }
  });

  test('a viewer gets updates and formats through, never keys, pointer or clipboard', () => {
    const filter = new ClientMessageFilter({ mayControl: () => false });
    const out = byteByByte(filter, stream);
    expect(out.equals(Buffer.concat([setPixelFormat, setEncodings([0, 1, -223]), fbur(false), fbur(true)]))).toBe(true);
    expect(filter.dropped).toEqual({ input: 3, xvp: 1 });
  });

  test('control can change between messages, and key state is reported for hand-over', () => {
    let control = false;
    const keys: [boolean, number][] = [];
    const filter = new ClientMessageFilter({ mayControl: () => control, onKey: (down, sym) => keys.push([down, sym]) });
    expect(filter.push(keyEvent(true, 0x62)).length).toBe(0);
    control = true;
    expect(filter.push(keyEvent(true, 0x63)).equals(keyEvent(true, 0x63))).toBe(true);
    expect(keys).toEqual([[true, 0x63]]);
  });

  test('extensions noVNC speaks to TigerVNC and QEMU pass; screen resizing and QEMU keys only for the controller', () => {
    const fence = Buffer.from([MSG.clientFence, 0, 0, 0, 0x80, 0, 0, 3, 2, 0xaa, 0xbb]);
    const continuous = Buffer.from([MSG.enableContinuousUpdates, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
    const resize = Buffer.concat([Buffer.from([MSG.setDesktopSize, 0, 4, 0, 3, 0, 1, 0]), Buffer.alloc(16)]);
    const qemuKey = Buffer.from([MSG.qemu, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30]);
    const all = Buffer.concat([fence, continuous, resize, qemuKey]);
    expect(byteByByte(new ClientMessageFilter({ mayControl: () => true }), all).equals(all)).toBe(true);
    const viewer = new ClientMessageFilter({ mayControl: () => false });
    expect(byteByByte(viewer, all).equals(Buffer.concat([fence, continuous]))).toBe(true);
    expect(viewer.dropped.input).toBe(2);
  });

  test.each([
    ['an oversized fence', Buffer.from([MSG.clientFence, 0, 0, 0, 0, 0, 0, 0, 200])],
    ['a QEMU audio message', Buffer.from([MSG.qemu, 1, 0, 0])],
    ['an unknown message type', Buffer.from([99, 0, 0, 0])],
    ['too many encodings', Buffer.from([MSG.setEncodings, 0, 0xff, 0xff])],
    ['an oversized clipboard', (() => { const b = Buffer.alloc(8); b.writeUInt8(MSG.clientCutText, 0); b.writeUInt32BE(MAX_CUT_TEXT + 1, 4); return b; })()],
    ['an oversized extended clipboard', (() => { const b = Buffer.alloc(8); b.writeUInt8(MSG.clientCutText, 0); b.writeInt32BE(-(MAX_CUT_TEXT + 1), 4); return b; })()],
  ])('%s is a protocol violation', (_name, bad) => {
    const filter = new ClientMessageFilter({ mayControl: () => true });
    expect(() => byteByByte(filter, Buffer.concat([fbur(true), bad]))).toThrow(ProtocolViolation);
  });
});
