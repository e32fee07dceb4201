import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CountersignError, type ErrorCode } from '../core/errors.js';

/**
 * The HTTP error boundary: every failure leaves as `{error: {code, message}}` with the status
 * of its code. Validation errors name the field at fault; unexpected errors are logged with
 * their cause and answered with a plain INTERNAL, never a stack trace.
 */
interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function fieldOf(issue: ValidationIssue, context: string | undefined): string {
  const path = (issue.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const extra = issue.params?.['missingProperty'] ?? issue.params?.['additionalProperty'];
  const field = [path, typeof extra === 'string' ? extra : ''].filter(Boolean).join('.');
  const where = context === 'querystring' ? 'query' : context === 'params' ? 'path' : context;
  return field === '' ? (where ?? 'body') : where === 'body' ? field : `${where}.${field}`;
}

function describeValidation(error: FastifyError): string {
  const issue = (error.validation?.[0] ?? {}) as ValidationIssue;
  const field = fieldOf(issue, error.validationContext);
  if (issue.params?.['additionalProperty'] !== undefined) return `${field}: is not a known field`;
  if (issue.params?.['missingProperty'] !== undefined) return `${field}: is required`;
  return `${field}: ${issue.message ?? 'is not valid'}`;
}

const FASTIFY_CODES: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['UNSUPPORTED_MEDIA_TYPE', 'content-type: not accepted here; send application/json (or text/csv, application/xml for imports)'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['INVALID_INPUT', 'content-length: does not match the body'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['PAYLOAD_TOO_LARGE', 'body: too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['INVALID_INPUT', 'body: is empty; send a JSON object'],
  FST_ERR_CTP_INVALID_JSON_BODY: ['INVALID_INPUT', 'body: is not valid JSON'],
};

export function sendError(reply: FastifyReply, error: CountersignError): FastifyReply {
  if (error.retryAfter !== undefined) void reply.header('retry-after', String(error.retryAfter));
  if (error.status === 401) void reply.header('www-authenticate', 'Bearer realm="countersign"');
  return reply.code(error.status).send({ error: { code: error.code, message: error.message } });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof CountersignError) {
      if (error.status >= 500) request.log.error({ err: error }, 'request failed');
      return sendError(reply, error);
    }
    if (error.validation !== undefined) return sendError(reply, new CountersignError('INVALID_INPUT', describeValidation(error)));
    const known = error.code === undefined ? undefined : FASTIFY_CODES[error.code];
    if (known !== undefined) return sendError(reply, new CountersignError(known[0], known[1]));
    if (error instanceof SyntaxError || (error.statusCode === 400 && error.message.includes('JSON'))) {
      return sendError(reply, new CountersignError('INVALID_INPUT', 'body: is not valid JSON'));
    }
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, new CountersignError('INVALID_INPUT', error.message));
    }
    request.log.error({ err: error }, 'unexpected error');
    return sendError(reply, new CountersignError('INTERNAL', 'internal error; see the server log'));
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new CountersignError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`)));
}
