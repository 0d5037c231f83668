package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// summary is the final one-line JSON object, keys in the order added.
type summary struct {
	keys []string
	vals []any
}

func (s *summary) add(key string, v any) {
	s.keys = append(s.keys, key)
	s.vals = append(s.vals, v)
}

// json renders the summary on one line.
func (s *summary) json() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		val, err := json.Marshal(s.vals[i])
		if err != nil {
			val, _ = json.Marshal(fmt.Sprint(s.vals[i]))
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.String()
}

// pct returns the p-th percentile of d by nearest rank (p 0 is the
// minimum), as the peers harness computes it.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	k := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// msR is d in milliseconds, rounded to 0.01.
func msR(d time.Duration) float64 { return round2(ms(d)) }

// fmtMS prints d in milliseconds with two decimals.
func fmtMS(d time.Duration) string { return fmt.Sprintf("%.2f ms", ms(d)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
