package campaigns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/filters"
)

type fixedCatalog struct{ cat *filters.Catalog }

func (f fixedCatalog) Catalog(context.Context) (*filters.Catalog, error) { return f.cat, nil }

func newTestStore(t *testing.T, max int) (*Store, string) {
	t.Helper()
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "camp")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, err := New(Config{Org: org, Max: max, Ignored: testOptions().Ignored, Now: func() time.Time {
		clock = clock.Add(time.Second)
		return clock
	}}, rdb, fixedCatalog{testOptions().Catalog})
	if err != nil {
		t.Fatal(err)
	}
	return s, org
}

func TestStoreVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, 0)
	v1 := `{"name":"a","triggers":[{"trigger":"added_to_opportunity"}]}`
	st, changed, err := s.Put(ctx, "a", []byte(v1))
	if err != nil || !changed || st.Version != 1 || st.UpdatedAt != "2026-12-01T10:00:01.000Z" {
		t.Fatalf("first put: %+v %v %v", st, changed, err)
	}
	_, rev1, _ := s.List(ctx)
	// The same definition again (other spelling): nothing changes.
	st, changed, err = s.Put(ctx, "a", []byte(`{"triggers":[{"trigger":"added_to_opportunity"}], "name":"a", "active":true}`))
	if err != nil || changed || st.Version != 1 || st.UpdatedAt != "2026-12-01T10:00:01.000Z" {
		t.Fatalf("same put: %+v %v %v", st, changed, err)
	}
	if _, rev, _ := s.List(ctx); rev != rev1 {
		t.Fatalf("an unchanged put raised the revision %d → %d", rev1, rev)
	}
	st, changed, err = s.Put(ctx, "a", []byte(`{"name":"a","active":false,"triggers":[{"trigger":"added_to_opportunity"}]}`))
	if err != nil || !changed || st.Version != 2 {
		t.Fatalf("new version: %+v %v %v", st, changed, err)
	}
	got, ok, err := s.Get(ctx, "a")
	if err != nil || !ok || got.Version != 2 || got.Active || got.QualifiedTotal == nil || *got.QualifiedTotal != 0 {
		t.Fatalf("get: %+v %v %v", got, ok, err)
	}
	if ok, err := s.Delete(ctx, "a"); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if _, ok, _ := s.Get(ctx, "a"); ok {
		t.Fatal("deleted campaign still served")
	}
	if ok, err := s.Delete(ctx, "a"); err != nil || ok {
		t.Fatalf("second delete: %v %v", ok, err)
	}
	// The same id again continues the version numbers.
	st, _, err = s.Put(ctx, "a", []byte(v1))
	if err != nil || st.Version != 3 {
		t.Fatalf("recreate: %+v %v", st, err)
	}
}

func TestStoreDeleteForgetsQualification(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, 0)
	if _, _, err := s.Put(ctx, "a", []byte(`{"name":"a","triggers":[{"trigger":"added_to_opportunity"}],"qualification":"once"}`)); err != nil {
		t.Fatal(err)
	}
	s.rdb.HSet(ctx, s.k.Marks("a"), "003000000000001AAA", 1)
	s.rdb.HSet(ctx, s.k.Qualified(), "a", 5)
	s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.k.Stream("a"), Values: []string{"campaign_id", "a"}})
	if got, _, _ := s.Get(ctx, "a"); *got.QualifiedTotal != 5 {
		t.Fatalf("qualified_total %d", *got.QualifiedTotal)
	}
	if _, err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.Exists(ctx, s.k.Marks("a")).Val(); n != 0 {
		t.Fatal("marks survived the delete")
	}
	if n := s.rdb.XLen(ctx, s.k.Stream("a")).Val(); n != 1 {
		t.Fatalf("the stream was not kept: %d entries", n)
	}
	if _, _, err := s.Put(ctx, "a", []byte(`{"name":"a","triggers":[{"trigger":"added_to_opportunity"}]}`)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, "a"); *got.QualifiedTotal != 0 {
		t.Fatalf("qualified_total after recreate %d", *got.QualifiedTotal)
	}
}

func TestStoreLimit(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, 2)
	body := []byte(`{"name":"a","triggers":[{"trigger":"added_to_opportunity"}]}`)
	for _, id := range []string{"a", "b"} {
		if _, _, err := s.Put(ctx, id, body); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := s.Put(ctx, "c", body)
	var le *LimitError
	if !errors.As(err, &le) || err.Error() != "campaigns.max: 2 campaigns already exist; delete one first" {
		t.Fatalf("err = %v", err)
	}
	// Replacing an existing one is not a create.
	if _, _, err := s.Put(ctx, "a", []byte(`{"name":"a2","triggers":[{"trigger":"added_to_opportunity"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(ctx, "c", body); err != nil {
		t.Fatal(err)
	}
}

func TestStoreActive(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, 0)
	for id, body := range map[string]string{
		"on":  `{"name":"on","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"has_opportunity"}]}`,
		"off": `{"name":"off","active":false,"triggers":[{"trigger":"added_to_opportunity"}]}`,
		"bad": `{"name":"bad","triggers":[{"trigger":"opportunity_updated","field":"StageName"}]}`,
	} {
		if _, _, err := s.Put(ctx, id, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// StageName becomes an ignored field: the stored "bad" no longer validates.
	s.cfg.Ignored = append(s.cfg.Ignored, "StageName")
	set, bad, err := s.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Campaigns) != 1 || set.Campaigns[0].ID != "on" || set.Campaigns[0].Version != 1 || set.Campaigns[0].Filters == nil {
		t.Fatalf("active %+v", set.Campaigns)
	}
	if len(bad) != 1 || bad["bad"] == nil || set.Rev != 3 {
		t.Fatalf("bad %v rev %d", bad, set.Rev)
	}
}
