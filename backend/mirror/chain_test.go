package mirror_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/mirror"
)

func TestResolveChains(t *testing.T) {
	t.Parallel()
	link := func(from, start string) mirror.Link { return mirror.Link{TransferFromID: from, PlanStart: start} }
	tests := []struct {
		name       string
		links      map[string]mirror.Link
		want       []mirror.Chain
		superseded []string
	}{
		{
			name:  "Single",
			links: map[string]mirror.Link{"10": link("", "2026-12-10T10:00:00")},
			want:  []mirror.Chain{{Root: "10", Current: "10", Members: []string{"10"}}},
		},
		{
			// Moved twice, the last time to an earlier date: the leaf is current,
			// whatever its date.
			name: "ChainOfThree",
			links: map[string]mirror.Link{
				"10": link("", "2026-12-10T10:00:00"),
				"11": link("10", "2026-12-17T10:00:00"),
				"12": link("11", "2026-12-03T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "10", Current: "12", Members: []string{"10", "11", "12"}}},
			superseded: []string{"10", "11"},
		},
		{
			name: "ForkLaterPlanStartWins",
			links: map[string]mirror.Link{
				"10": link("", "2026-12-10T10:00:00"),
				"11": link("10", "2026-12-20T10:00:00"),
				"12": link("10", "2026-12-15T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "10", Current: "11", Members: []string{"10", "11", "12"}}},
			superseded: []string{"10"},
		},
		{
			name: "ForkSameStartHigherIDWins",
			links: map[string]mirror.Link{
				"10":  link("", "2026-12-10T10:00:00"),
				"9":   link("10", "2026-12-20T10:00:00"),
				"100": link("10", "2026-12-20T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "10", Current: "100", Members: []string{"9", "10", "100"}}},
			superseded: []string{"10"},
		},
		{
			// The fork's deeper branch is not preferred for its depth.
			name: "ForkUnevenBranches",
			links: map[string]mirror.Link{
				"10": link("", "2026-12-10T10:00:00"),
				"11": link("10", "2026-12-12T10:00:00"),
				"13": link("11", "2026-12-14T10:00:00"),
				"12": link("10", "2026-12-20T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "10", Current: "12", Members: []string{"10", "11", "12", "13"}}},
			superseded: []string{"10", "11"},
		},
		{
			name: "MissingLink",
			links: map[string]mirror.Link{
				"11": link("10", "2026-12-17T10:00:00"),
				"12": link("11", "2026-12-24T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "11", Current: "12", Members: []string{"11", "12"}, MissingFrom: "10"}},
			superseded: []string{"11"},
		},
		{
			name: "Cycle",
			links: map[string]mirror.Link{
				"20": link("22", "2026-12-10T10:00:00"),
				"21": link("20", "2026-12-11T10:00:00"),
				"22": link("21", "2026-12-12T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "20", Current: "22", Members: []string{"20", "21", "22"}, Cycle: true}},
			superseded: []string{"20", "21"},
		},
		{
			name: "CycleWithTail",
			links: map[string]mirror.Link{
				"30": link("31", "2026-12-10T10:00:00"),
				"31": link("30", "2026-12-11T10:00:00"),
				"32": link("31", "2026-12-12T10:00:00"),
			},
			want:       []mirror.Chain{{Root: "30", Current: "32", Members: []string{"30", "31", "32"}, Cycle: true}},
			superseded: []string{"30", "31"},
		},
		{
			name:  "SelfLink",
			links: map[string]mirror.Link{"40": link("40", "2026-12-10T10:00:00")},
			want:  []mirror.Chain{{Root: "40", Current: "40", Members: []string{"40"}, Cycle: true}},
		},
		{
			name: "SeparateChains",
			links: map[string]mirror.Link{
				"1": link("", "2026-12-10T10:00:00"),
				"2": link("1", "2026-12-11T10:00:00"),
				"3": link("", "2026-12-10T10:00:00"),
			},
			want: []mirror.Chain{
				{Root: "1", Current: "2", Members: []string{"1", "2"}},
				{Root: "3", Current: "3", Members: []string{"3"}},
			},
			superseded: []string{"1"},
		},
		{
			name: "UnreadableStartLosesFork",
			links: map[string]mirror.Link{
				"1": link("", "2026-12-10T10:00:00"),
				"2": link("1", "2026-12-11T10:00:00"),
				"3": link("1", "garbage"),
			},
			want:       []mirror.Chain{{Root: "1", Current: "2", Members: []string{"1", "2", "3"}}},
			superseded: []string{"1"},
		},
		{name: "Empty", links: map[string]mirror.Link{}, want: []mirror.Chain{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			chains := mirror.ResolveChains(tt.links)
			if diff := cmp.Diff(tt.want, chains.All()); diff != "" {
				t.Fatalf("chains (-want +got):\n%s", diff)
			}
			var superseded []string
			for _, c := range tt.want {
				for _, id := range c.Members {
					got, ok := chains.Of(id)
					require.True(t, ok, id)
					require.Equal(t, c.Root, got.Root, "root of %s", id)
					if chains.Superseded(id) {
						superseded = append(superseded, id)
						require.NotEqual(t, c.Current, id, "a superseded reception is never current")
					}
				}
			}
			if diff := cmp.Diff(tt.superseded, superseded); diff != "" {
				t.Fatalf("superseded (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("UnknownID", func(t *testing.T) {
		t.Parallel()
		_, ok := mirror.ResolveChains(map[string]mirror.Link{"1": {}}).Of("2")
		require.False(t, ok)
	})
	t.Run("LongChainTerminates", func(t *testing.T) {
		t.Parallel()
		links := map[string]mirror.Link{}
		const n = 50_000
		for i := 1; i <= n; i++ {
			links[strconv.Itoa(i)] = mirror.Link{TransferFromID: strconv.Itoa(i%n + 1), PlanStart: "2026-12-10T10:00:00"}
		}
		// One big loop: i moved from i+1, n from 1. Cut before the lowest id.
		all := mirror.ResolveChains(links).All()
		require.Len(t, all, 1)
		require.Equal(t, "1", all[0].Root)
		require.Equal(t, "2", all[0].Current)
		require.True(t, all[0].Cycle)
		require.Len(t, all[0].Members, n)
	})
}

// A move end to end: the lead shows the successor's state, never the old
// reception's «moved» cancellation.
func TestMoveNeverShowsCancelled(t *testing.T) {
	t.Parallel()
	rules := mirror.DefaultRules()
	moscow := zone(t, "Europe/Moscow")
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	old := reception("10", "2026-12-10T10:00:00", "2026-12-10T10:30:00")
	old.ReceptionCanceled, old.CancelReasonID, old.CancelReasonComment = "2026-11-30T15:00:00", "6", "перенос по просьбе пациента"
	moved := reception("11", "2026-12-17T10:00:00", "2026-12-17T10:30:00")
	moved.TransferFromID = "10"
	byID := map[string]mirror.Reception{"10": old, "11": moved}

	type shown struct {
		Root, Current string
		State         mirror.State
		Hold          bool
	}
	tests := []struct {
		name string
		have []string
		want shown
	}{
		{"SuccessorArrived", []string{"10", "11"}, shown{Root: "10", Current: "11", State: mirror.StatePlanned}},
		{"SuccessorFirst", []string{"11"}, shown{Root: "11", Current: "11", State: mirror.StatePlanned}},
		// The successor has not arrived yet: the current reception is moved
		// away, so the caller holds the lead rather than show «Отменён».
		{"SuccessorNotYet", []string{"10"}, shown{Root: "10", Current: "10", State: mirror.StateCancelled, Hold: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			links := map[string]mirror.Link{}
			for _, id := range tt.have {
				links[id] = mirror.LinkOf(byID[id].IdentReception)
			}
			chain, ok := mirror.ResolveChains(links).Of(tt.have[0])
			require.True(t, ok)
			current := byID[chain.Current]
			state, err := rules.ReceptionState(current, moscow, now)
			require.NoError(t, err)
			got := shown{Root: chain.Root, Current: chain.Current, State: state, Hold: rules.MovedAway(current.IdentReception)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("lead (-want +got):\n%s", diff)
			}
		})
	}
}
