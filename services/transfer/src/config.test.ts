import { transferSection } from './config';

const cluster = { id: 'hpc', host: 'h', known_hosts_file: '/k', key_file: '/i', allowed_remote_roots: ['/r'] };

describe('transfer config: remote jobs and follow mode', () => {
  it('has defaults for every new key', () => {
    const config = transferSection.parse({ clusters: [cluster] });
    expect(config.clusters[0]?.slurm_env).toEqual({});
    expect(config.remote_jobs).toEqual({ templates_dir: './etc/transfer/job-templates', poll_interval_ms: 10_000, command_timeout_ms: 30_000 });
    expect(config.follow).toEqual({ stream_url: 'http://127.0.0.1:8093', output_root: './var/stream/output', reconnect_ms: 2000 });
  });

  it.each([
    [{ clusters: [{ ...cluster, slurm_env: { 'BAD NAME': 'x' } }] }, /an environment variable name/],
    [{ clusters: [{ ...cluster, slurm_env: { SLURM_CONF: 'a\nb' } }] }, /no NUL or newline/],
    [{ remote_jobs: { templates: '/t' } }, /templates/],
    [{ remote_jobs: { poll_interval_ms: 10 } }, /poll_interval_ms|>=100/],
    [{ follow: { stream_url: 'not a url' } }, /stream_url|URL/i],
    [{ follow: { extra: 1 } }, /extra/],
  ])('refuses %j', (input, message) => {
    expect(() => transferSection.parse(input)).toThrow(message);
  });
});
