// Package defaults fills in the settings that a configuration leaves unset.
//
// The sizes, counts, rates and durations that configure this server's packages mean nothing at
// zero or below: a buffer of -1 panics, a timeout of 0 fails every call, a rate of 0 refuses
// every request. So a value that is not above zero is read as "not set" and takes the package's
// default; a setting for which zero or a negative value means something of its own (an
// interval where a negative one turns a feature off, say) does not use Positive.
package defaults

// Positive returns v when it is above zero, and def otherwise.
func Positive[T ~int | ~int32 | ~int64 | ~float64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
