import { execFileSync } from 'node:child_process';
import { progressParser, remoteCommand, rsyncShell, shellQuote, sshArgs, type SshTarget } from './ssh';

const target: SshTarget = { host: '127.0.0.1', port: 2222, user: 'alice', keyFile: '/etc/cloudlet/id_ed25519', knownHostsFile: '/etc/cloudlet/known_hosts' };

const HOSTILE = ['$(touch pwned)', '`touch pwned`', "it's", "'", "''", 'a b\tc', 'new\nline', '"dq" \\ back', ';id;', '-rf', '*', '~', '', '%h %u', 'é ✓'];

describe('shellQuote', () => {
  it('wraps in single quotes and escapes embedded ones', () => {
    expect(shellQuote('plain')).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('')).toBe("''");
  });

  it('survives a real POSIX shell unchanged, one word per element, nothing run', () => {
    // printf prints each word NUL-terminated: the shell must see exactly the words we quoted.
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${remoteCommand(HOSTILE)}`], { cwd: '/', encoding: 'utf8' });
    expect(out.split('\0').slice(0, -1)).toEqual(HOSTILE);
  });

  it('refuses an empty command', () => {
    expect(() => remoteCommand([])).toThrow(/no remote command/);
  });
});

describe('sshArgs', () => {
  it('pins the host key and never prompts', () => {
    const args = sshArgs(target).join(' ');
    expect(args).toContain('-o StrictHostKeyChecking=yes');
    expect(args).toContain('-o UserKnownHostsFile=/etc/cloudlet/known_hosts');
    expect(args).toContain('-o GlobalKnownHostsFile=/dev/null');
    expect(args).toContain('-o BatchMode=yes');
    expect(args).toContain('-o IdentitiesOnly=yes');
    expect(args).toContain('-i /etc/cloudlet/id_ed25519');
    expect(args).toContain('-p 2222');
    expect(args).toContain('-l alice');
  });

  it.each([
    ['a key path with a space', { keyFile: '/etc/my key' }],
    ['a relative key path', { keyFile: 'id_ed25519' }],
    ['a known_hosts path with a quote', { knownHostsFile: "/etc/it's" }],
    ['a known_hosts path with a % token', { knownHostsFile: '/home/%u/kh' }],
    ['a user that is an option', { user: '-oProxyCommand=touch pwned' }],
    ['a host that is an option', { host: '-oProxyCommand=x' }],
    ['a port out of range', { port: 70000 }],
  ])('refuses %s', (_what, change) => {
    let caught: unknown;
    try {
      sshArgs({ ...target, ...change });
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'ssh_target_invalid' });
  });
});

describe('rsyncShell', () => {
  it('quotes every word of the ssh command line', () => {
    const shell = rsyncShell(target);
    expect(shell.startsWith("'ssh' '-F' '/dev/null'")).toBe(true);
    expect(shell).toContain("'-i' '/etc/cloudlet/id_ed25519'");
    expect(shell).toContain("'UserKnownHostsFile=/etc/cloudlet/known_hosts'");
  });
});

describe('progressParser', () => {
  const sample = '      32,768   0%    0.00kB/s    0:00:00 (xfr#0, to-chk=1/2)\r  67,108,864 100%   98.00MB/s    0:00:00 (xfr#1, to-chk=0/1)\n';

  it('reads cumulative bytes from progress2 lines', () => {
    const seen: number[] = [];
    progressParser((b) => seen.push(b))(sample);
    expect(seen).toEqual([32768, 67108864]);
  });

  it('resumes on partial input, fed one byte at a time', () => {
    const seen: number[] = [];
    const feed = progressParser((b) => seen.push(b));
    for (const ch of sample) feed(ch);
    expect(seen).toEqual([32768, 67108864]);
  });

  it('ignores lines that are not progress', () => {
    const seen: number[] = [];
    progressParser((b) => seen.push(b))('sending incremental file list\nfoo 12%\n');
    expect(seen).toEqual([]);
  });
});
