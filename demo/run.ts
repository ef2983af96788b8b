// `npm run demo`: the README's main command. The product end to end on a laptop, no AWS account:
// moto, the stack's resources, a simulated fleet with faults, the real handlers, a live timeline and
// the final table. Options: npm run demo -- --help
import { runDemo } from '../test/simulator/demo.js';

process.exitCode = await runDemo(process.argv.slice(2));
