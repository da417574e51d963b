// An async handler whose promise rejects.
export const handler = async (event) => {
  console.log("checking", event.card);
  throw new TypeError(`card ${event.card} declined`);
};
