/**
 * The child process of a Node.js execution environment in the lab.
 *
 * Started as `node node_worker.mjs CONTROL_IN_FD CONTROL_OUT_FD SENTINEL
 * [LAYER_DIR ...]` (docs/execution-environment-protocol.md). Stages:
 *
 * 1. init: patch the console, make layers resolvable, load the handler named by
 *    `_HANDLER` as Lambda's Node runtime does, then answer `ready`, or
 *    `init_error` followed by the sentinel and exit status 1.
 * 2. invoke, one at a time: apply the invocation's environment and call the
 *    handler with Lambda's context and callback. The answer is decided as the
 *    runtime decides it: the handler's promise, the first call of callback,
 *    succeed, fail or done, or else the event loop running empty.
 * 3. report: the handler's output is flushed, the sentinel follows it on fd 1,
 *    then the result goes to the control pipe. Each invocation is answered
 *    exactly once.
 * 4. end: at end of file on the control pipe the worker exits 0. An uncaught
 *    exception or unhandled rejection ends it with 129 or 128, as in Lambda,
 *    once the invocation it broke has been answered.
 *
 * The event loop "running empty" is real, not estimated: while an invocation
 * runs, the control pipe is unreferenced, so Node's own 'beforeExit' fires when
 * nothing of the handler's is left (timers, sockets, file reads, child
 * processes), exactly the moment Lambda's runtime waits for.
 */

import fs from "node:fs";
import module from "node:module";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import util from "node:util";

const EXIT_INIT_ERROR = 1; // the protocol's status after init_error
const EXIT_PARENT_GONE = 1;
const EXIT_UNHANDLED_REJECTION = 128; // Lambda's Node runtime
const EXIT_UNCAUGHT_EXCEPTION = 129;
const LOG_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
const require = module.createRequire(import.meta.url);

// ---------------------------------------------------------------- errors

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class NodeJsExit extends Error {}
class UserCodeSyntaxError extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(typeof reason === "symbol" ? reason.toString() : reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const runtimeError of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  NodeJsExit,
  UserCodeSyntaxError,
  UnhandledPromiseRejection,
]) {
  runtimeError.prototype.name = `Runtime.${runtimeError.name}`;
}

function syntaxError(original) {
  const error = new UserCodeSyntaxError(String(original));
  // The file and line live only in the original stack; the runtime's own
  // frames would point into this worker and tell the developer nothing.
  error.stack = original.stack;
  return error;
}

function looksLikeError(value) {
  return ["name", "message", "stack"].every(
    (key) => value?.[key] && typeof value[key] === "string",
  );
}

/** Lambda's Node error payload: errorType, errorMessage, trace. */
function errorPayload(error) {
  const escapeDel = (text) => text?.replaceAll("\x7F", "%7F");
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: escapeDel(error.name),
        errorMessage: escapeDel(error.message),
        trace: escapeDel(error.stack).split("\n"),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while " +
        "retrieving one or more of its message, name, and stack",
    };
  }
}

/** An error as the text log shows it: a tab, then JSON with its own fields. */
function formattedError(error) {
  const expand = (value) => {
    if (!(value instanceof Error)) return value;
    const fields = {
      errorType: value.name,
      errorMessage: value.message,
      code: value.code,
      ...value,
    };
    if (typeof value.stack === "string") fields.stack = value.stack.split("\n");
    return fields;
  };
  try {
    return "\t" + JSON.stringify(error, (_key, value) => expand(value));
  } catch {
    return "\t" + JSON.stringify(errorPayload(error));
  }
}

// ---------------------------------------------------------------- console

const logContext = { requestId: undefined, tenantId: undefined };

function textLine(level, message, ...params) {
  const text = util.format(message, ...params);
  return `${new Date().toISOString()}\t${logContext.requestId}\t${level}\t${text}`;
}

function jsonLine(level, ...params) {
  const record = {
    timestamp: new Date().toISOString(),
    level,
    requestId: logContext.requestId,
    tenantId: logContext.tenantId,
  };
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, (_key, value) => jsonErrorFields(value));
    } catch {
      record.message = util.format(params[0]);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const error = params.find((param) => param instanceof Error);
  if (error) {
    record.errorType = error.constructor?.name ?? "UnknownError";
    record.errorMessage = error.message;
    const stack = error.stack;
    record.stackTrace = typeof stack === "string" ? stack.split("\n") : [];
  }
  return JSON.stringify(record);
}

function jsonErrorFields(value) {
  if (!(value instanceof Error)) return value;
  const stack = value.stack;
  return {
    errorType: value.constructor?.name ?? "UnknownError",
    errorMessage: value.message,
    stackTrace: typeof stack === "string" ? stack.split("\n") : stack,
    ...value,
  };
}

/**
 * Replace console's methods with Lambda's log lines; return the error logger
 * the runtime itself uses for "Invoke Error" and "Uncaught Exception".
 */
function patchConsole(env) {
  const json = env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === "JSON";
  const wanted = LOG_LEVELS.indexOf(env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase());
  const threshold = Math.max(wanted, 0); // unset or unknown: everything
  const logger = (level) => {
    if (level !== "FATAL" && LOG_LEVELS.indexOf(level) < threshold) {
      return () => {};
    }
    const format = json ? jsonLine : textLine;
    return (message, ...params) => {
      const line = format(level, message, ...params);
      process.stdout.write(line.replaceAll("\n", "\r") + "\n");
    };
  };
  console.trace = logger("TRACE");
  console.debug = logger("DEBUG");
  console.info = logger("INFO");
  console.log = console.info;
  console.warn = logger("WARN");
  console.error = logger("ERROR");
  console.fatal = logger("FATAL");

  const logErrorLine = console.error;
  const asError = (error) => (error instanceof Error ? error : new Error(error));
  return json
    ? (_label, error) => logErrorLine(asError(error))
    : (label, error) => logErrorLine(label, formattedError(asError(error)));
}

// ---------------------------------------------------------------- handler loading

/**
 * Load `_HANDLER` from the task root the way Lambda's Node runtime does.
 * NOTE: the global `awslambda` (response streaming) is not provided, so a
 * streaming handler fails at init with a ReferenceError.
 */
async function loadHandler(taskRoot, handlerName) {
  if (handlerName.includes("..")) {
    throw new MalformedHandlerName(
      `'${handlerName}' is not a valid handler name. Use absolute paths when ` +
        "specifying root directories in handler names.",
    );
  }
  const slash = handlerName.lastIndexOf("/");
  const moduleRoot = handlerName.slice(0, slash + 1);
  const parts = /^([^.]*)\.(.*)$/.exec(handlerName.slice(slash + 1));
  if (!parts) throw new MalformedHandlerName("Bad handler");

  const [, moduleName, functionPath] = parts;
  const userModule = await loadUserModule(taskRoot, moduleRoot, moduleName);
  const handler = functionPath
    .split(".")
    .reduce((found, key) => found && found[key], userModule);
  if (!handler) {
    throw new HandlerNotFound(`${handlerName} is undefined or not exported`);
  }
  if (typeof handler !== "function") {
    throw new HandlerNotFound(`${handlerName} is not a function`);
  }
  return handler;
}

async function loadUserModule(taskRoot, moduleRoot, moduleName) {
  try {
    return await findUserModule(taskRoot, moduleRoot, moduleName);
  } catch (error) {
    if (error instanceof SyntaxError) throw syntaxError(error);
    // ESM's ERR_MODULE_NOT_FOUND is not converted: Lambda reports it as is.
    if (error?.code === "MODULE_NOT_FOUND") throw new ImportModuleError(error);
    throw error;
  }
}

/** Try extensionless, .js (CommonJS or ESM), .mjs, .cjs, then require's search. */
async function findUserModule(taskRoot, moduleRoot, moduleName) {
  const base = path.resolve(taskRoot, moduleRoot, moduleName);
  const importFile = (file) => import(pathToFileURL(file).href);
  const jsIsModule =
    fs.existsSync(`${base}.js`) && packageIsModule(path.dirname(base));
  const candidates = [
    [base, require],
    [`${base}.js`, jsIsModule ? importFile : require],
    [`${base}.mjs`, importFile],
    [`${base}.cjs`, require],
  ];
  for (const [file, load] of candidates) {
    if (!fs.existsSync(file)) continue;
    const loaded = await load(file);
    if (loaded) return loaded;
  }
  return require(require.resolve(moduleName, { paths: [taskRoot, moduleRoot] }));
}

/** Whether the nearest package.json above `folder` says "type": "module". */
function packageIsModule(folder) {
  if (folder.endsWith(`${path.sep}node_modules`)) return false;
  const manifest = path.join(folder, "package.json");
  if (fs.existsSync(manifest)) {
    try {
      const description = JSON.parse(fs.readFileSync(manifest, "utf8"));
      if (description) return description.type === "module";
    } catch (error) {
      console.warn(`${manifest} is unreadable; .js files load as CommonJS.`, error);
      return false;
    }
  }
  const parent = path.dirname(folder);
  return parent !== folder && packageIsModule(parent);
}

// ---------------------------------------------------------------- layers

// ESM ignores NODE_PATH, so bare imports that fail are retried from inside
// each layer. Runs on Node's loader thread; the data URL keeps it in this file.
const LAYER_RESOLVE_HOOK = `
let parents = [];
export function initialize(data) { parents = data.parents; }
const isBare = (specifier) => !/^([./#]|[a-z][a-z0-9+.-]*:)/i.test(specifier);
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !isBare(specifier)) throw error;
    for (const parentURL of parents) {
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch (retry) {
        if (retry?.code !== "ERR_MODULE_NOT_FOUND") throw retry;
      }
    }
    throw error;
  }
}`;

/** The layers' node_modules folders, in the order Lambda's /opt gives them. */
function layerModuleDirs(layerDirs) {
  const major = process.versions.node.split(".")[0];
  // Lambda unpacks layers into one /opt in order, so a later layer's files win.
  return [...layerDirs]
    .reverse()
    .flatMap((dir) => [
      path.join(dir, "nodejs", `node${major}`, "node_modules"),
      path.join(dir, "nodejs", "node_modules"),
    ]);
}

/** Let bare require() and import find layer packages, as NODE_PATH does in Lambda. */
function useLayers(layerDirs, taskRoot) {
  const moduleDirs = layerModuleDirs(layerDirs);
  // Lambda's default NODE_PATH ends with the task root. A function's own
  // NODE_PATH replaces it there; here the layers stay in front of it, since
  // its /opt paths mean nothing in the lab.
  const own = process.env.NODE_PATH;
  const tail = own ? own.split(path.delimiter) : [taskRoot];
  process.env.NODE_PATH = [...moduleDirs, ...tail].join(path.delimiter);
  // NODE_PATH is read once at startup; this re-reads it (no public API does).
  module._initPaths?.();

  // NOTE: Node before 18.19 and 20.6 has no module.register; there, import
  // cannot find layer packages, while require still can.
  if (moduleDirs.length === 0 || typeof module.register !== "function") return;
  const parents = moduleDirs.map(
    (dir) => pathToFileURL(path.join(path.dirname(dir), "mless-layer.mjs")).href,
  );
  const hook = "data:text/javascript," + encodeURIComponent(LAYER_RESOLVE_HOOK);
  module.register(hook, { data: { parents } });
}

// ---------------------------------------------------------------- the pipes

function parseArguments(argv) {
  const [controlIn, controlOut, sentinel, ...layerDirs] = argv.slice(2);
  const fds = [controlIn, controlOut].map(Number);
  if (!fds.every(Number.isInteger) || !/^[A-Za-z0-9]+$/.test(sentinel ?? "")) {
    const usage = "node node_worker.mjs IN_FD OUT_FD SENTINEL [LAYER_DIR ...]";
    fs.writeSync(2, `usage: ${usage}\n`);
    process.exit(2);
  }
  return { controlInFd: fds[0], controlOutFd: fds[1], sentinel, layerDirs };
}

/**
 * Read control messages: a JSON line each, then `body_bytes` raw bytes.
 * A socket on the pipe waits in the event loop; fs.createReadStream would
 * park one of libuv's four pool threads in a blocking read for good, leaving
 * three to the handler's file, DNS, crypto and zlib work.
 */
function openControl(fd, onMessage, onEnd) {
  const socket = new net.Socket({ fd, readable: true, writable: false });
  // Chunks are joined only once a message is whole: joining each 64 KB
  // chunk as it came would copy a 5 MB event forty times over.
  let chunks = [];
  let buffered = 0;
  let header = null;
  socket.on("data", (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    for (;;) {
      const wanted = header === null ? 1 : header.body_bytes;
      if (buffered < wanted) return;
      const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      let rest;
      if (header === null) {
        const end = data.indexOf(10);
        if (end < 0) {
          chunks = [data];
          return;
        }
        try {
          header = JSON.parse(data.subarray(0, end).toString("utf8"));
          header.body_bytes = Number(header.body_bytes) || 0;
        } catch {
          header = null; // not a message of the protocol
        }
        rest = data.subarray(end + 1);
      } else {
        const message = header;
        header = null;
        message.body = data.subarray(0, message.body_bytes);
        rest = data.subarray(message.body_bytes);
        onMessage(message);
      }
      chunks = [rest];
      buffered = rest.length;
      if (header === null && buffered === 0) return;
    }
  });
  socket.on("end", onEnd);
  return socket;
}

/** One JSON line, ASCII only like the parent's, then the body; written whole. */
function sendTo(fd, message, body = Buffer.alloc(0)) {
  const header = body.length ? { ...message, body_bytes: body.length } : message;
  const text = JSON.stringify(header).replace(
    /[\u007f-\uffff]/g,
    (char) => "\\u" + char.charCodeAt(0).toString(16).padStart(4, "0"),
  );
  const data = Buffer.concat([Buffer.from(text + "\n", "ascii"), body]);
  for (let offset = 0; offset < data.length; ) {
    offset += fs.writeSync(fd, data, offset);
  }
}

// Bound before user code runs: a handler that replaces process.stdout.write
// must not be able to swallow the sentinel.
const streams = [process.stderr, process.stdout].map((stream) => ({
  stream,
  write: stream.write.bind(stream),
}));

/**
 * Resolve once everything already written to stderr and then stdout has
 * reached the pipe (writes to a pipe are asynchronous), ending with `text`.
 */
async function flushOutput(text = "") {
  for (const { stream, write } of streams) {
    const last = stream === process.stdout ? text : "";
    await new Promise((resolve) => {
      try {
        write(last, (error) => {
          if (error && last) fs.writeSync(1, last);
          resolve();
        });
      } catch {
        if (last) fs.writeSync(1, last);
        resolve();
      }
    });
  }
}

// ---------------------------------------------------------------- invocations

/** One invocation: what the parent asked and, once decided, its answer. */
class Invocation {
  constructor(message, handlerIsAsync) {
    this.message = message;
    this.requestId = message.request_id;
    this.answer = null;
    // What an empty event loop decides while nothing else has, as in Lambda.
    this.whenLoopEmpty = handlerIsAsync
      ? () => this.fail(new NodeJsExit(NODE_JS_EXIT_MESSAGE))
      : () => this.succeed(null);
  }

  succeed(result) {
    let payload;
    try {
      payload = JSON.stringify(result === undefined ? null : result);
    } catch {
      this.fail(new Error("Unable to stringify response body"));
      return;
    }
    // A function or symbol stringifies to nothing; null is the nearest answer.
    this.settle({ payload: payload ?? "null" });
  }

  fail(error, { logged = false } = {}) {
    if (this.answer) return;
    if (!logged) worker.logError("Invoke Error", error);
    this.settle({ error: errorPayload(error) });
  }

  settle(answer) {
    if (this.answer) return;
    this.answer = answer;
    // The only failure left is the parent's pipe closing: nobody to answer.
    worker.report(this).catch(() => process.exit(EXIT_PARENT_GONE));
  }
}

const NODE_JS_EXIT_MESSAGE =
  "The Lambda runtime client detected an unexpected Node.js exit code. This is " +
  "most commonly caused by a Promise that was never settled. For more " +
  "information, see https://nodejs.org/docs/latest/api/process.html#exit-codes";

/** The callback and the legacy context methods; only the first call counts. */
function callbacksFor(invocation) {
  let waitsForEmptyEventLoop = true;
  let called = false;
  const once =
    (method) =>
    (...args) => {
      if (called) return;
      method(...args);
      called = true;
    };
  const done = (error, result) => {
    invocation.whenLoopEmpty = null;
    if (error !== undefined && error !== null) invocation.fail(error);
    else invocation.succeed(result);
  };
  const callback = (error, result) => {
    if (error !== undefined && error !== null) return done(error);
    if (!waitsForEmptyEventLoop) return done(null, result);
    invocation.whenLoopEmpty = () => invocation.succeed(result);
  };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitsForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitsForEmptyEventLoop = value;
    },
    succeed: once((result) => done(null, result)),
    fail: once((error) => done(error ?? "handled", null)),
    done: once(done),
  };
  return { callback: once(callback), context };
}

/** This process's peak resident memory in kilobytes. */
function peakRssKb() {
  // Linux carries getrusage's peak over from the process that forked this
  // one (the lab, often larger); /proc counts this program only.
  try {
    const status = fs.readFileSync("/proc/self/status", "ascii");
    const peak = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    if (peak) return Number(peak[1]);
  } catch {
    // no /proc (macOS): fall back on getrusage
  }
  return process.resourceUsage().maxRSS;
}

function parseJsonField(text, name) {
  if (text === null || text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot parse ${name} as json: ${error}`);
  }
}

/** Add what Lambda's context carries to the callback part of the context. */
function describeInvocation(context, message, env) {
  const deadlineMs = message.deadline_ms;
  return Object.assign(context, {
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonField(message.client_context, "ClientContext"),
    identity: parseJsonField(message.identity, "CognitoIdentity"),
    invokedFunctionArn: message.invoked_function_arn,
    awsRequestId: message.request_id,
    tenantId: message.tenant_id ?? undefined,
    getRemainingTimeInMillis() {
      // Clamped as the protocol asks: the deadline is in the lab's clock.
      const remaining = deadlineMs - Date.now();
      return Math.min(Math.max(remaining, 0), message.timeout_ms ?? remaining);
    },
  });
}

function applyEnvironment(message) {
  for (const [name, value] of Object.entries(message.environment ?? {})) {
    if (value === null) delete process.env[name];
    else process.env[name] = String(value);
  }
  if (message.trace_id) process.env._X_AMZN_TRACE_ID = message.trace_id;
  else delete process.env._X_AMZN_TRACE_ID;
}

// ---------------------------------------------------------------- the worker

const worker = {
  phase: "init", // then "ready", or "failed"
  handler: null,
  handlerIsAsync: false,
  current: null,
  queued: [],
  inputEnded: false,
  exitCode: null, // set by a fatal error; applied once the answer is out
  logError: () => {},

  receive(message) {
    if (message?.type !== "invoke") return;
    this.queued.push(message);
    this.next();
  },

  endOfInput() {
    this.inputEnded = true;
    if (!this.current) this.exit(0);
  },

  /** Run the next queued invocation if none is running. */
  next() {
    if (this.phase !== "ready" || this.current) return;
    const message = this.queued.shift();
    if (message) return this.invoke(message);
    if (this.inputEnded) this.exit(0);
  },

  invoke(message) {
    const invocation = new Invocation(message, this.handlerIsAsync);
    this.current = invocation;
    // Unreferenced, the control pipe no longer keeps Node alive, so
    // 'beforeExit' means the handler's own work has drained.
    this.control.unref();
    applyEnvironment(message);
    logContext.requestId = message.request_id;
    logContext.tenantId = message.tenant_id ?? undefined;

    const { callback, context } = callbacksFor(invocation);
    const { succeed, fail } = context; // the handler may overwrite its context
    try {
      const event = JSON.parse(message.body.toString("utf8"));
      const described = describeInvocation(context, message, process.env);
      const result = this.handler(event, described, callback);
      if (result && typeof result.then === "function") {
        result.then(succeed, fail);
      }
    } catch (error) {
      callback(error);
    }
  },

  onEmptyEventLoop() {
    const invocation = this.current;
    if (!invocation) return this.control?.ref();
    if (invocation.answer) return;
    (invocation.whenLoopEmpty ?? (() => invocation.succeed(null)))();
  },

  /** Flush, write the sentinel, send the result; then take the next one. */
  async report(invocation) {
    await flushOutput(this.sentinelText);
    const { payload, ...answer } = invocation.answer;
    const body = payload === undefined ? undefined : Buffer.from(payload, "utf8");
    sendTo(
      this.controlOutFd,
      {
        type: "result",
        request_id: invocation.requestId,
        ...answer,
        max_rss_kb: peakRssKb(),
      },
      body,
    );
    this.current = null;
    // NOTE: nothing is frozen here. Work the handler left running carries on
    // between invocations, where Lambda would pause it until the next one.
    if (this.exitCode !== null) return this.exit(this.exitCode);
    this.control.ref();
    this.next();
  },

  onFatalError(error, exitCode) {
    if (this.phase !== "ready") return this.failInit(error, { logged: true });
    this.exitCode ??= exitCode;
    const invocation = this.current;
    if (!invocation) return this.exit(exitCode);
    // Answered already: report() is writing it and exits afterwards.
    invocation.fail(error, { logged: true });
  },

  async failInit(error, { logged = false } = {}) {
    if (this.phase === "failed") return;
    this.phase = "failed";
    if (!logged) this.logError("Uncaught Exception", error);
    // Output first: the parent may stop the child once it reads init_error.
    await flushOutput();
    sendTo(this.controlOutFd, {
      type: "init_error",
      init_duration_ms: performance.now(),
      error: { ...errorPayload(error), requestId: "" },
    });
    await flushOutput(this.sentinelText);
    process.exit(EXIT_INIT_ERROR);
  },

  async exit(code) {
    await flushOutput();
    process.exit(code);
  },
};

async function main() {
  const args = parseArguments(process.argv);
  // User code sees Node's argv as in Lambda, without the fds and sentinel.
  process.argv.splice(2);
  worker.controlOutFd = args.controlOutFd;
  worker.sentinelText = `\x1e${args.sentinel}\x1e`;
  worker.logError = patchConsole(process.env);

  process.on("uncaughtException", (error) => {
    worker.logError("Uncaught Exception", error);
    worker.onFatalError(error, EXIT_UNCAUGHT_EXCEPTION);
  });
  process.on("unhandledRejection", (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    worker.logError("Unhandled Promise Rejection", error);
    worker.onFatalError(error, EXIT_UNHANDLED_REJECTION);
  });
  process.on("beforeExit", () => worker.onEmptyEventLoop());

  worker.control = openControl(
    args.controlInFd,
    (message) => worker.receive(message),
    () => worker.endOfInput(),
  );

  const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  try {
    useLayers(args.layerDirs, taskRoot);
    worker.handler = await loadHandler(taskRoot, process.env._HANDLER ?? "");
  } catch (error) {
    return worker.failInit(error);
  }
  // A rejection left unhandled by the module's top level surfaces only after
  // the current tick; it belongs to init, as in Lambda.
  await new Promise((resolve) => setImmediate(resolve));
  if (worker.phase !== "init") return;
  // NOTE: "async" means declared async. A plain function returning a promise
  // that never settles answers null on an empty loop, not Runtime.NodeJsExit.
  worker.handlerIsAsync = util.types.isAsyncFunction(worker.handler);
  // Init's output ends with the sentinel, so the parent never takes it for
  // the first invocation's.
  await flushOutput(worker.sentinelText);
  const initDurationMs = performance.now(); // since the process started
  sendTo(worker.controlOutFd, { type: "ready", init_duration_ms: initDurationMs });
  worker.phase = "ready";
  worker.next();
}

await main();
