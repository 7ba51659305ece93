// Package version holds the gstats release version.
package version

// Version is the gstats release this source tree builds.
const Version = "0.1.0"
