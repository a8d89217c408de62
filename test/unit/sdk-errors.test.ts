import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { encodeMessage } from '../../proto/index.js';
import {
  DroverError,
  fromGrpcError,
  InternalError,
  InvalidWorkflowError,
  RunFinishedError,
  RunNotFoundError,
  ServerUnreachableError,
  UnavailableError,
} from '../../sdk/index.js';
import { formatError } from '../../sdk/cli/report.js';
import { toServiceError } from '../../control-plane/api/grpc-errors.js';
import { UnavailableError as ServerUnavailableError } from '../../control-plane/errors.js';

function serviceError(code: status, details: string, detail?: object): ServiceError {
  const metadata = new Metadata();
  if (detail) metadata.set('drover-error-bin', Buffer.from(encodeMessage('ErrorDetail', detail)));
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

describe('sdk errors', () => {
  it('errors - maps an ErrorDetail to its class with hint and problems', () => {
    const err = fromGrpcError(
      serviceError(status.INVALID_ARGUMENT, 'bad workflow', {
        code: 'INVALID_WORKFLOW',
        message: 'wf.yaml: 1 problem in the workflow',
        hint: 'fix the problems listed',
        problems: [{ path: 'steps[1].needs[0]', line: 12, column: 7, message: 'unknown step "x"', severity: 'error' }],
      }),
      '127.0.0.1:7400',
    );
    expect(err).toBeInstanceOf(InvalidWorkflowError);
    expect(err).toBeInstanceOf(DroverError);
    expect(err.code).toBe('INVALID_WORKFLOW');
    expect(err.name).toBe('InvalidWorkflowError');
    expect(err.message).toBe('wf.yaml: 1 problem in the workflow');
    expect(err.hint).toBe('fix the problems listed');
    expect(err.problems).toEqual([{ path: 'steps[1].needs[0]', line: 12, column: 7, message: 'unknown step "x"', severity: 'error' }]);
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('errors - maps RUN_NOT_FOUND and RUN_FINISHED codes', () => {
    const notFound = fromGrpcError(serviceError(status.NOT_FOUND, 'x', { code: 'RUN_NOT_FOUND', message: 'no run r-1' }), 'a:1');
    expect(notFound).toBeInstanceOf(RunNotFoundError);
    expect(notFound.message).toBe('no run r-1');
    const finished = fromGrpcError(serviceError(status.FAILED_PRECONDITION, 'x', { code: 'RUN_FINISHED', message: 'run r-1 already succeeded' }), 'a:1');
    expect(finished).toBeInstanceOf(RunFinishedError);
  });

  it('errors - UNAVAILABLE without detail is SERVER_UNREACHABLE naming the address and how to start one', () => {
    const err = fromGrpcError(serviceError(status.UNAVAILABLE, 'No connection established'), '10.0.0.9:7400');
    expect(err).toBeInstanceOf(ServerUnreachableError);
    expect(err.code).toBe('SERVER_UNREACHABLE');
    expect(err.message).toContain('10.0.0.9:7400');
    expect(err.message).toContain('drover server');
    expect(err.message).toContain('drover dev');
    expect(err.message).toContain('DROVER_ADDR');
    expect(err.message).toContain('--server');
  });

  it('errors - UNAVAILABLE from a control plane that cannot write its data dir is UnavailableError, not SERVER_UNREACHABLE', () => {
    const sent = toServiceError(new ServerUnavailableError({ dir: '/var/lib/drover', code: 'ENOSPC', message: 'no space left on device' }, 'no run was started'));
    expect(sent.code).toBe(status.UNAVAILABLE);
    const err = fromGrpcError(Object.assign(new Error('14 UNAVAILABLE'), sent), '127.0.0.1:7400');
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe('the control plane cannot write its data dir /var/lib/drover (ENOSPC: no space left on device); no run was started');
    expect(err.hint).toBe('free space or fix the disk; the control plane retries by itself and takes new runs again once a write succeeds');
  });

  it('errors - an unknown status or detail code becomes INTERNAL', () => {
    const err = fromGrpcError(serviceError(status.UNKNOWN, 'boom'), 'a:1');
    expect(err).toBeInstanceOf(InternalError);
    expect(err.message).toBe('boom');
    const odd = fromGrpcError(serviceError(status.ABORTED, 'x', { code: 'SOMETHING_NEW', message: 'new thing', hint: 'h' }), 'a:1');
    expect(odd).toBeInstanceOf(InternalError);
    expect(odd.message).toBe('new thing');
    expect(odd.hint).toBe('h');
  });

  it('errors - CLI prints message, hint and located problems', () => {
    const err = new InvalidWorkflowError('wf.yaml: 2 problems in the workflow', {
      hint: 'fix them',
      problems: [
        { path: 'steps[0].run', line: 4, column: 10, message: 'expression in shell text', severity: 'error' },
        { path: 'params.role', line: 0, column: 0, message: 'unused', severity: 'warning' },
      ],
    });
    expect(formatError(err)).toBe(
      'error: wf.yaml: 2 problems in the workflow\nhint: fix them\n  steps[0].run (4:10): expression in shell text\n  params.role: warning: unused\n',
    );
  });
});
