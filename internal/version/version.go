// Package version holds the mgrplane release version, reported in manager
// metadata (mgrplane_version) and by every binary's --version flag.
package version

// Version is the mgrplane release this tree builds.
const Version = "0.1.0"
