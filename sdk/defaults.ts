/** Constants the CLI needs before it loads any gRPC code (connection.ts re-exports them). */

/** Port the control plane listens on unless told otherwise. */
export const DEFAULT_ADDRESS = '127.0.0.1:7400';
