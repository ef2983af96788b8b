'use strict';
// esbuild plugins for serverless-esbuild (custom.esbuild.plugins in serverless.yml).
// CommonJS because serverless-esbuild `require`s this file.

const fs = require('node:fs/promises');

/**
 * AWS SDK v3 clients (3.9xx and later) describe every operation's shapes in one generated module,
 * `dist-es/schemas/schemas_0.js`, whose objects use computed keys such as `{ [_xN]: _m }` where
 * `_xN` is a module-level `const _xN = "xmlName"`. esbuild cannot prove a computed key free of side
 * effects, so it keeps every such shape and everything they reference: about 550 KB of the EC2
 * client's shapes land in a bundle that sends three EC2 commands (aws/aws-sdk-js-v3#7607).
 * Writing those keys as the string literals they already are changes no value and lets esbuild
 * drop the shapes the bundle never uses.
 *
 * @type {import('esbuild').Plugin}
 */
const inlineAwsSdkSchemaKeys = {
  name: 'inline-aws-sdk-schema-keys',
  setup(build) {
    build.onLoad({ filter: /[\\/]@aws-sdk[\\/].*[\\/]dist-es[\\/](?:.*[\\/])?schemas[\\/]schemas_\d+\.js$/ }, async (args) => {
      const source = await fs.readFile(args.path, 'utf8');
      const literals = new Map();
      for (const [, name, literal] of source.matchAll(/^const (_\w+) = ("[^"\\\n]*");$/gm)) literals.set(name, literal);
      const contents = source.replace(/([{,]\s*)\[(_\w+)\]:/g, (whole, before, name) =>
        literals.has(name) ? `${before}${literals.get(name)}:` : whole,
      );
      return { contents, loader: 'js' };
    });
  },
};

module.exports = [inlineAwsSdkSchemaKeys];
