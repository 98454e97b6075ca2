import { defineProject } from 'vitest/config';
import { irbTestConfig } from '../../vitest.shared.ts';

export default defineProject(irbTestConfig());
