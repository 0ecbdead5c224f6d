package cache

// SetBeforeFill installs a hook that runs between a miss's SQL read and its fill.
func (h *Store) SetBeforeFill(fn func()) { h.beforeFill = fn }
