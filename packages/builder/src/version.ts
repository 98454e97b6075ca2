/** What goes into every key of the output cache besides the options: the format and irb's version. */
// An import, not a read of the file beside this module: a bundler (the CLI's) inlines it, where
// `../package.json` from a bundled chunk would be another package's.
import packageJson from '../package.json' with { type: 'json' };

/**
 * The version of irb's output format that goes into every build key (and so into the output
 * cache's keys). 5: members hold no `TRAILER!!!`, each has its own archive device number, the
 * first gzip member is named, and the archive ends with a trailer member, so the standard tools
 * read every member; the generated inits load kernel modules, configure the network and apply
 * job files. (3 and 4 were these changes in the making, never released: skipped so that no
 * member cached meanwhile is taken for one of this layout.)
 */
export const BUILD_FORMAT_VERSION = 5;

/** This package's version: part of every base key. */
export function irbBuilderVersion(): string {
  return packageJson.version;
}
