package jobs

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

var queueSizeDesc = prometheus.NewDesc("svyazka_queue_tasks",
	"Tasks in each asynq queue by state.", []string{"queue", "state"}, nil)

// QueueCollector exports asynq queue sizes to Prometheus on each scrape.
type QueueCollector struct{ Inspector *asynq.Inspector }

// Describe implements prometheus.Collector.
func (c QueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueSizeDesc }

// Collect implements prometheus.Collector. A queue that has never held a task
// does not exist in Redis yet and reports zeros.
func (c QueueCollector) Collect(ch chan<- prometheus.Metric) {
	for queue := range Queues {
		info, err := c.Inspector.GetQueueInfo(queue)
		if err != nil {
			info = &asynq.QueueInfo{}
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "aggregating": info.Aggregating,
		} {
			ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(n), queue, state)
		}
	}
}
