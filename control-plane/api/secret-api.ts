/** SecretService: set, list and remove named secrets; no call returns a value. */
import type { SecretServiceHandlers } from '../../proto/index.js';
import { callerTokenId } from '../security/access.js';
import type { SecretInfo, Secrets } from '../secrets.js';
import { toServiceError, unary } from './grpc-errors.js';

const toInfo = (s: SecretInfo) => ({ name: s.name, createdMs: s.createdMs, updatedMs: s.updatedMs, updatedBy: s.updatedBy, version: s.version });

export function secretService(secrets: Secrets): SecretServiceHandlers {
  return {
    SetSecret: (call, callback) => {
      secrets.set(call.request.name, call.request.value, callerTokenId(call.metadata)).then(
        (s) => callback(null, toInfo(s)),
        (err: unknown) => callback(toServiceError(err) as never),
      );
    },
    ListSecrets: unary(() => ({ secrets: secrets.list().map(toInfo) })),
    DeleteSecret: unary(async (req) => toInfo(await secrets.remove(req.name))),
  };
}
