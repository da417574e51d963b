// CommonJS callback handlers, answered as Lambda's Node.js runtime answers them.
exports.answers = (event, context, callback) => {
  setTimeout(() => callback(null, { answered: "by callback" }), 10);
};

exports.neverCallsBack = (event, context, callback) => {
  // Work that keeps the event loop busy for a moment, then nothing more.
  setTimeout(() => console.log("timer done"), 50);
};

exports.logs = (event, context, callback) => {
  console.log("hello from node");
  console.error("an error line");
  callback(null, context.awsRequestId);
};
