import { oodEscape, oodUnescape } from './ood-escape';

describe('OOD user escaping', () => {
  test('matches Apache ap_escape_urlencoded', () => {
    expect(oodEscape('http://cilogon.org/serverA/users/12345')).toBe('http%3A%2F%2Fcilogon.org%2FserverA%2Fusers%2F12345');
    expect(oodEscape('ada@demo.example')).toBe('ada%40demo.example');
    expect(oodEscape('a b*c_d-e.f~')).toBe('a+b*c_d-e.f%7E');
    expect(oodEscape("$(reboot);'x'\n")).toBe('%24%28reboot%29%3B%27x%27%0A');
    expect(oodEscape('Zoë')).toBe('Zo%C3%AB');
  });

  test('round-trips and tolerates other encoders', () => {
    for (const value of ['http://cilogon.org/serverE/users/1', 'Zoë Ünïcode', "a;b\n'c'", '']) {
      expect(oodUnescape(oodEscape(value))).toBe(value);
    }
    expect(oodUnescape('ada%40demo.example')).toBe('ada@demo.example');
    expect(oodUnescape('a%20b')).toBe('a b');
    expect(oodUnescape('http%3a%2f%2fx')).toBe('http://x');
  });

  test('malformed escapes are refused, not guessed', () => {
    expect(oodUnescape('abc%')).toBeUndefined();
    expect(oodUnescape('abc%zz')).toBeUndefined();
    expect(oodUnescape('%C3')).toBeUndefined(); // half a UTF-8 character
  });
});
