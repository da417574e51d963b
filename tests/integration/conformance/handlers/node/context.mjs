// An ES module handler that reports what its context holds.
export const handler = async (event, context) => ({
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  invokedFunctionArn: context.invokedFunctionArn,
  remaining: context.getRemainingTimeInMillis(),
  callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
  identity: context.identity ?? null,
  clientContext: context.clientContext ?? null,
  timeZone: process.env.TZ,
  executionEnv: process.env.AWS_EXECUTION_ENV,
  event,
});
