package graph

// SetFastMarshal turns the fast marshalling of message lists on or off (fastjson.go).
func SetFastMarshal(on bool) { fastMarshalOff.Store(!on) }

// FastMarshalled returns how many lists the fast path has written.
func FastMarshalled() int64 { return fastMarshalled.Load() }
