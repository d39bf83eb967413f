package synth
import "testing"
func BenchmarkGeneratorNext(b *testing.B) {
	g := NewGenerator(GenConfig{Seed: 1, Opportunities: 2000})
	for i := 0; i < 200000; i++ { g.Next() }
	b.ResetTimer()
	for b.Loop() { g.Next() }
	b.ReportMetric(float64(len(g.opps)), "opps")
}
