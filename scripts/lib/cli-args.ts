/**
 * For the scripts that read their own argv (soak, bench): --help, or a typo (--minute 30, --qiuck), was ignored and a
 * default run of minutes started a whole stack, with the options asked for silently dropped. Exits before anything
 * starts: 0 with the usage for --help, 2 with it for an unknown option.
 */
export function checkArgs(argv: string[], known: { values: string[]; flags: string[]; usage: string }): void {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(known.usage);
    process.exit(0);
  }
  const values = new Set(known.values);
  const flags = new Set(known.flags);
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].replace(/^--/, "").split("=", 2);
    const ok = argv[i].startsWith("--") && (values.has(name) || (flags.has(name) && inline === undefined));
    if (!ok) {
      console.error(`✗ Unknown option ${argv[i]}\n${known.usage}`);
      process.exit(2);
    }
    if (values.has(name) && inline === undefined) i++;
  }
}
