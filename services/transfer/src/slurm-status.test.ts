import { parseSacct, parseSbatch, parseScontrol, parseSqueue, REMOTE_TRANSITIONS, sbatchReason, stateFromSlurm } from './slurm-status';

describe('Slurm answers', () => {
  it('maps Slurm states to ours', () => {
    expect(['PENDING', 'RUNNING', 'COMPLETING', 'COMPLETED', 'CANCELLED by 3100', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'FAILED', 'WHATEVER'].map(stateFromSlurm)).toEqual([
      'pending',
      'running',
      'running',
      'completed',
      'cancelled',
      'timeout',
      'failed',
      'failed',
      'failed',
      'unknown',
    ]);
  });

  it('reads squeue, sacct, scontrol and sbatch output', () => {
    expect(parseSqueue('12|RUNNING|cloudlet-a\n13|PENDING|cloudlet-b\n\ngarbage\n')).toEqual([
      { id: '12', state: 'RUNNING', name: 'cloudlet-a' },
      { id: '13', state: 'PENDING', name: 'cloudlet-b' },
    ]);
    expect(parseSacct('12|cloudlet-a|COMPLETED|0:0\n13|cloudlet-b|CANCELLED by 0|0:15\n')).toEqual([
      { id: '12', name: 'cloudlet-a', state: 'COMPLETED', exitCode: '0:0' },
      { id: '13', name: 'cloudlet-b', state: 'CANCELLED by 0', exitCode: '0:15' },
    ]);
    expect(parseScontrol('JobId=7 JobName=cloudlet-x UserId=u(1) JobState=COMPLETED Reason=None ExitCode=0:0 RunTime=00:00:02')).toEqual({ id: '7', name: 'cloudlet-x', state: 'COMPLETED', exitCode: '0:0' });
    expect(parseScontrol('slurm_load_jobs error: Invalid job id specified')).toBeUndefined();
    expect(parseSbatch('42\n')).toBe('42');
    expect(parseSbatch('42;cluster\n')).toBe('42');
    expect(parseSbatch('Submitted batch job 42')).toBeUndefined();
    expect(sbatchReason('sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n')).toBe(
      'invalid partition specified: nope; Batch job submission failed: Invalid partition name specified',
    );
    expect(sbatchReason('')).toBe('sbatch failed without a message');
  });

  it('never moves a finished job', () => {
    for (const state of ['completed', 'failed', 'cancelled', 'timeout', 'rejected', 'blocked'] as const) expect(REMOTE_TRANSITIONS[state]).toEqual([]);
    expect(REMOTE_TRANSITIONS.pending).not.toContain('submitting');
  });
});
