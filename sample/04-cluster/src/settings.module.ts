import { Module } from '@nestjs/common';
import { clusterSettings } from './cluster.options.js';

/** The injection token of the sample's settings. */
export const CLUSTER_SETTINGS = Symbol('CLUSTER_SETTINGS');

/** Provides the settings read from the environment. */
@Module({
  providers: [
    { provide: CLUSTER_SETTINGS, useFactory: () => clusterSettings() },
  ],
  exports: [CLUSTER_SETTINGS],
})
export class SettingsModule {}
