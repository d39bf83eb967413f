package state

import "sync"

// groupCache keeps the opportunity groups this process last wrote, with
// their revision, so that a batch does not read them back from Redis. It is
// only an optimisation: every script still checks the revision, and a
// conflict evicts the group and reloads it, so a stale entry (another
// instance wrote the group, Redis rolled back) costs one retry, never a
// wrong write.
type groupCache struct {
	mu  sync.Mutex
	m   map[string]*loaded
	max int
}

func newGroupCache(max int) *groupCache {
	return &groupCache{m: map[string]*loaded{}, max: max}
}

// get takes the cached group out of the cache: the caller owns it (and
// mutates it) until it puts it back, so no copy is needed; a concurrent
// caller for the same group misses and reads Redis instead.
func (c *groupCache) get(id string) (*loaded, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	l, ok := c.m[id]
	delete(c.m, id)
	c.mu.Unlock()
	return l, ok
}

// put takes ownership of groups that are now what Redis holds.
func (c *groupCache) put(groups map[string]*loaded) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(groups) > c.max {
		// Drop about a tenth, in map order (random enough).
		drop := c.max/10 + len(groups)
		for id := range c.m {
			if drop == 0 {
				break
			}
			delete(c.m, id)
			drop--
		}
	}
	for id, l := range groups {
		c.m[id] = l
	}
}

func (c *groupCache) evict(ids map[string]*loaded) {
	c.mu.Lock()
	for id := range ids {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

func (c *groupCache) clear() {
	c.mu.Lock()
	c.m = map[string]*loaded{}
	c.mu.Unlock()
}
