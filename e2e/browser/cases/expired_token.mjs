export default { name: "expired_token", async run() {} };
