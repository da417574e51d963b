// A Node.js function (an ES module): greets whoever the event names and
// says what it knows of its invocation. Lambda's Node.js runtime calls the
// exported `handler`; so does the lab's Node.js execution environment.

let invocations = 0; // module scope: kept while the environment stays warm

export const handler = async (event, context) => {
  invocations += 1;
  const name = event.name ?? "world";
  console.log(`greeting ${name} (invocation ${invocations} of this environment)`);
  return {
    greeting: `Hello, ${name}!`,
    functionName: context.functionName,
    requestId: context.awsRequestId,
    runtime: process.env.AWS_EXECUTION_ENV,
    timeLeft: context.getRemainingTimeInMillis() > 0,
  };
};
