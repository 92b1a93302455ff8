// `npm run token -- --kahaId alice [--id <uuid>] [--ttl 1h] [--role admin]`: a token for the local secret.
import { tokenCli } from "./lib/token.js";

tokenCli(process.argv.slice(2), process.env, { out: (line) => console.log(line), err: (line) => console.error(line) }).then((code) => {
  process.exitCode = code;
});
